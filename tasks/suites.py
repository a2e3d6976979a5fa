"""Edit a data-quality suite from the command line, for the reviews an alert asks for.

``python -m tasks.suites accept payment_method "Crypto Wallet"`` adds a category to the
column's allowed set in the source's suite (``expectations/<source>.raw.json``, or
``clean.suite``), spelled as the clean step normalises it, and records who accepted what
and when in the suite's ``meta.accepted``. Commit the suite afterwards: retraining runs
check out the committed project, so an accepted value counts from the next commit on.

``python -m tasks.suites show payment_method`` prints the column's checks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
from typing import Any

from tasks.core.config import load_params
from tasks.core.data.schema import normalise_category
from tasks.core.paths import PATHS, find_project_root
from tasks.core.quality.validation import read_suite_file, save_suite

IN_SET = "expect_column_values_to_be_in_set"


class SuiteEditError(ValueError):
    """The edit cannot be made (unknown column, not a categorical column...)."""


def accept_values(
    spec: dict[str, Any],
    column: str,
    values: list[str],
    aliases: dict[str, str] | None = None,
    who: str = "",
    when: str = "",
) -> tuple[dict[str, Any], list[str]]:
    """``spec`` with ``values`` (normalised like the clean step does) allowed in ``column``.

    Returns the new spec and the values that were not allowed before.
    """
    import pandas as pd

    kinds = (spec.get("meta") or {}).get("column_kinds") or {}
    if column not in kinds:
        raise SuiteEditError(
            f"the suite has no column '{column}'; its columns: {', '.join(sorted(kinds))}"
        )
    if kinds[column] != "categorical":
        raise SuiteEditError(
            f"'{column}' is a {kinds[column]} column; only categorical columns have allowed values"
        )
    spelled = normalise_category(pd.Series(values, dtype=object), aliases).tolist()
    normalised = list(dict.fromkeys(v for v in spelled if isinstance(v, str)))
    if not normalised:
        raise SuiteEditError("no value to accept (blank values are missing values, not categories)")
    out = json.loads(json.dumps(spec))  # a deep copy; the caller's spec is left as it was
    checks = [
        e
        for e in out["expectations"]
        if e.get("type") == IN_SET and e.get("kwargs", {}).get("column") == column
    ]
    if not checks:
        raise SuiteEditError(
            f"the suite has no allowed-values check for '{column}': every value is accepted already"
        )
    added: list[str] = []
    for check in checks:
        allowed = list(check["kwargs"].get("value_set") or [])
        new = [v for v in normalised if v not in allowed]
        check["kwargs"]["value_set"] = sorted(allowed + new)
        added += [v for v in new if v not in added]
    if added:
        out.setdefault("meta", {}).setdefault("accepted", []).append(
            {"column": column, "values": added, "by": who, "at": when}
        )
    return out, added


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tasks.suites", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    accept = sub.add_parser("accept", help="allow new categories in a column")
    accept.add_argument("column")
    accept.add_argument("values", nargs="+")
    show = sub.add_parser("show", help="a column's checks")
    show.add_argument("column")
    for p in (accept, show):
        p.add_argument(
            "--suite", default=None, help="the suite file (default: the current source's)"
        )
    args = parser.parse_args(argv)

    from tasks.core.quality.suites import suite_path_for

    root = find_project_root()
    params = load_params(root / PATHS.params)
    rel = args.suite or suite_path_for(params.clean, params.collect)
    path = root / rel
    if not path.exists():
        print(
            f"no suite at {rel}: the clean step proposes one from the first snapshot (make run)",
            file=sys.stderr,
        )
        return 1
    spec = read_suite_file(path)
    if args.command == "show":
        for e in spec["expectations"]:
            if e.get("kwargs", {}).get("column") == args.column:
                print(
                    f"{e['type']}: "
                    f"{json.dumps({k: v for k, v in e['kwargs'].items() if k != 'column'})}"
                )
        return 0
    try:
        new, added = accept_values(
            spec,
            args.column,
            args.values,
            params.clean.category_aliases.get(args.column),
            who=getpass.getuser(),
            when=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        )
    except SuiteEditError as exc:
        print(f"not changed: {exc}", file=sys.stderr)
        return 1
    if not added:
        print(f"{rel}: {', '.join(args.values)} already allowed in {args.column}; nothing changed")
        return 0
    save_suite(path, new)
    print(
        f"{rel}: {args.column} now allows {', '.join(repr(v) for v in added)}.\n"
        f"Commit it so retraining runs use it: git add {rel} && git commit -m 'accept "
        f"{args.column} values'"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
