"""How many SQL statements does a discovery run send to its database, and which? A count by kind.

Runs a discovery in-process (the default run unless overrides are given) with a trace callback on every
SQLite connection the run opens, and counts each statement by what it does: the COUNT queries that measure
the image budget (samples planned for the run, candidates waiting for their confirmation images), other
COUNT queries, other reads, and writes. `budget_asks` is how often the loop asked how much budget is left.

    python benchmarks/store_queries.py --save [--out DIR] ['{"budget": 4000}']

Prints JSON: `budget_asks`, `statements` (total) and `by_kind`.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path

from result_file import parse_args, write_result

BUDGET_QUERIES = ("SELECT COUNT(*) FROM samples WHERE purpose IN", "FROM candidates WHERE status = ")


def kind_of(statement: str) -> str:
    text = " ".join(statement.split())
    if any(marker in text for marker in BUDGET_QUERIES):
        return "budget count"
    verb = text.split(" ", 1)[0].upper()
    if verb == "SELECT":
        return "other count" if "COUNT(" in text.upper() else "other read"
    if verb in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
        return "write"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("overrides", nargs="?", default="{}", help="config overrides as a JSON object")
    parser.add_argument("--smoke", action="store_true", help="two classes, one round: checks the script")
    args = parse_args(parser)
    overrides = json.loads(args.overrides)
    if args.smoke:
        overrides = {"classes": ["boat", "car"], "rounds": 1, **overrides}

    import blindspots
    from blindspots.pipeline.budget import ImageBudget

    kinds: Counter = Counter()
    connect = sqlite3.connect

    def traced(*arguments, **options):
        connection = connect(*arguments, **options)
        connection.set_trace_callback(lambda statement: kinds.update([kind_of(statement)]))
        return connection

    sqlite3.connect = traced
    asks = Counter()
    remaining = ImageBudget.remaining

    def counted(self):
        asks["budget"] += 1
        return remaining(self)

    ImageBudget.remaining = counted
    out = args.out or Path(tempfile.mkdtemp(prefix="blindspots-queries-"))
    result = blindspots.discover({"out": str(out), **overrides})
    figures = {"overrides": overrides, "images": result.summary.images_generated, "budget_asks": asks["budget"],
               "statements": sum(kinds.values()), "by_kind": dict(kinds.most_common())}
    print(json.dumps(figures, indent=1))
    write_result(args, "store_queries", figures, uses_world=True)


if __name__ == "__main__":
    main()
