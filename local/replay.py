"""`make replay POLICY=path`: what a candidate approval policy would have done to the calls already
recorded, asked of a running Signoff (POST /policy/simulate). Nothing runs and nothing changes.

    python -m local.replay candidate.json [--since 2026-11-01T00:00:00Z] [--until ...] [--api URL] [--key KEY]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import requests

COLUMNS = (
    ("calls", "calls"),
    ("gated_now", "gated now"),
    ("gated_under_candidate", "gated then"),
    ("approvals_no_longer_asked", "no longer asked"),
    ("ran_ungated_would_need_sign_off", "would now ask"),
    ("budget_hits", "budget hits"),
)


def table(report: dict) -> str:
    rows = [("tool", *(title for _, title in COLUMNS))]
    for tool, counts in report["tools"].items():
        rows.append((tool, *(str(counts[key]) for key, _ in COLUMNS)))
    rows.append(("total", *(str(report["total"][key]) for key, _ in COLUMNS)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    for approver, days in report["approver_load_per_day"].items():
        busiest = max(days.items(), key=lambda item: item[1])
        lines.append(
            f"{approver}: {sum(days.values())} decisions over {len(days)} day(s), most {busiest[1]} on {busiest[0]}"
        )
    if report["truncated"]:
        lines.append("(more than 20,000 calls in the range: only the first were replayed)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policy", help="the candidate policy (JSON file)")
    parser.add_argument("--since")
    parser.add_argument("--until")
    parser.add_argument("--api", default="http://127.0.0.1:3000")
    parser.add_argument("--key", default="local-dev-key")
    args = parser.parse_args(argv)
    try:
        body = {"policy": json.loads(Path(args.policy).read_text(encoding="utf-8"))}
    except (OSError, ValueError) as exc:
        print(f"cannot read the candidate policy {args.policy}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    body |= {k: v for k, v in (("since", args.since), ("until", args.until)) if v}
    try:
        response = requests.post(
            f"{args.api.rstrip('/')}/policy/simulate",
            json=body,
            headers={"Authorization": f"Bearer {args.key}"},
            timeout=60,
        )
    except requests.ConnectionError:
        print(f"nothing answers at {args.api} (is `make local` running, on that port?)", file=sys.stderr)
        return 2
    if response.status_code != 200:
        print(f"{response.status_code}: {response.text}", file=sys.stderr)
        return 1
    print(table(response.json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
