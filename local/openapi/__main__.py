"""`make openapi`: write openapi.yaml from the client API's routes (Powertools' event handler).

python -m local.openapi [--check]    (--check: exit 1 when the committed file is stale)
"""

from __future__ import annotations

import sys

from local.openapi.document import DOCUMENT, render


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        if DOCUMENT.read_text() != text:
            print(f"{DOCUMENT.name} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    DOCUMENT.write_text(text)
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
