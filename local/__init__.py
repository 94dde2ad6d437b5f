"""The local stack: emulators and the in-process runtime behind `make local` and the tests."""

import sys
from pathlib import Path

# The signoff package lives in the layer, as in Lambda; make it importable here too.
_LAYER = str(Path(__file__).resolve().parent.parent / "layers" / "signoff")
if _LAYER not in sys.path:
    sys.path.insert(0, _LAYER)
