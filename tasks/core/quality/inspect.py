"""``make init DATA=data/external/<file>``: a ready params.yaml section for a user's own file.

It reads the file as the collect step will (separator, encoding and decimal comma detected)
and proposes ``collect`` and ``problem``: the likely target (a two-valued column) with its
positive label, id candidates (unique keys), time candidates, columns that look known only
after the outcome (by name, or a single-feature ROC-AUC near 1 with the guessed target),
columns that look personal (``collect.pii``), and the ``evaluate.slices`` and ``sensitive``
columns that exist. It prints; with ``--write`` it also rewrites those sections of
``params.yaml`` (every other line stays as it is).
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tasks.core.config import CleanParams
from tasks.core.data.pii import looks_personal
from tasks.core.data.schema import parse_dates, parse_numbers
from tasks.core.data.sources import decimal_comma
from tasks.core.io import write_text
from tasks.core.paths import PATHS, find_project_root
from tasks.core.quality.leakage import single_feature_auc

ENCODINGS = ("utf-8", "utf-8-sig", "cp1252", "latin-1")
TARGET_NAMES = re.compile(
    r"churn|target|label|class|outcome|exited|attrition|cancel|default|status|purchase|left|y$",
    re.IGNORECASE,
)
POSITIVE = ("yes", "true", "1", "y", "churn", "churned", "bad", "default", "left", "exited")
ID_NAMES = re.compile(r"(^|[_\s-])(id|key|number|no|nr)$|^id|id$", re.IGNORECASE)
POST_NAMES = re.compile(
    r"reason|cancel|terminat|closed|exit|end_?date|churn_?date|date_of|outcome|after|refund",
    re.IGNORECASE,
)
SENSITIVE_NAMES = re.compile(
    r"(^|[_\s-])(gender|sex|female|male|age|senior|race|ethnicity|marital|religion|disability|"
    r"nationality)([_\s-]|$)",
    re.IGNORECASE,
)


def sniff(path: Path) -> dict[str, str]:
    """Separator, encoding and decimal mark of a CSV, from its first 64 KiB."""
    head = path.read_bytes()[:65536]
    encoding = next(e for e in ENCODINGS if _decodes(head, e))
    text = head.decode(encoding, errors="replace")
    try:
        sep = csv.Sniffer().sniff(text.split("\n", 1)[0] + "\n", delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    decimal = "," if sep != "," and re.search(r"(^|[^\d])\d+,\d+([^\d]|$)", text) else "."
    return {"sep": sep, "encoding": encoding, "decimal": decimal}


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
    except UnicodeDecodeError:
        return False
    return True


def read(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The file as text cells, and how to read it (``collect.csv``)."""
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path).astype("string"), {}
    fmt = sniff(path)
    frame = pd.read_csv(
        path,
        sep=fmt["sep"],
        encoding=fmt["encoding"],
        dtype=str,
        keep_default_na=False,
        na_values=[""],
    ).astype("string")
    if fmt["decimal"] == ",":
        frame = frame.apply(decimal_comma)
    return frame, fmt


def _norm(values: pd.Series) -> pd.Series:
    return values.dropna().str.strip().str.lower()


def target_candidates(frame: pd.DataFrame) -> list[str]:
    """Two-valued columns, the likeliest target names first."""
    binary = [c for c in frame.columns if _norm(frame[c]).nunique() == 2]
    return sorted(binary, key=lambda c: (not TARGET_NAMES.search(str(c)), list(frame).index(c)))


def positive_label(values: pd.Series) -> str:
    """The label that means "it happened": a yes-like word, else the rarer class."""
    counts = _norm(values).value_counts()
    for word in POSITIVE:
        if word in counts.index:
            return word
    return str(counts.index[-1])


def _numbers(values: pd.Series) -> pd.Series:
    return parse_numbers(values)[0]


def id_candidates(frame: pd.DataFrame) -> list[str]:
    """Columns whose values are all present and unique (id-like names first)."""
    unique = [
        c for c in frame.columns if frame[c].notna().all() and frame[c].nunique() == len(frame)
    ]
    unique = [c for c in unique if _numbers(frame[c]).isna().all() or ID_NAMES.search(str(c))]
    return sorted(unique, key=lambda c: not ID_NAMES.search(str(c)))


def time_candidates(frame: pd.DataFrame, formats: list[str]) -> list[str]:
    """Columns where at least 90% of the cells parse as dates in one of ``formats``.

    The clean step's own parser reads them (:func:`tasks.core.data.schema.parse_dates`), so
    an ISO 8601 time stamp such as ``2017-01-01T06:00:42Z`` is offered as it will be read.
    """
    out = []
    for column in frame.columns:
        values = frame[column].dropna().head(2000)
        if values.empty or _numbers(values).notna().mean() > 0.5:
            continue
        if parse_dates(values, formats)[0].notna().mean() >= 0.9:
            out.append(str(column))
    return out


def post_outcome_candidates(frame: pd.DataFrame, target: str | None, positive: str) -> dict:
    """Columns that look known only after the outcome, with the reason."""
    found: dict[str, str] = {}
    y = None
    if target is not None:
        labels = _norm(frame[target])
        y = (frame[target].str.strip().str.lower() == positive).astype(float)
        y = y[frame[target].notna()].to_numpy() if len(labels) else None
    for column in frame.columns:
        if column == target:
            continue
        if POST_NAMES.search(str(column)):
            found[str(column)] = "its name suggests it is known only after the outcome"
        elif y is not None:
            values = frame.loc[frame[target].notna(), column]
            numbers = _numbers(values)
            values = numbers if numbers.notna().mean() > 0.9 else values
            auc = single_feature_auc(values.reset_index(drop=True), y, seed=0)
            if auc >= 0.95:
                found[str(column)] = f"alone it predicts {target} with ROC-AUC {auc:.3f}"
    return found


def propose(frame: pd.DataFrame, fmt: dict[str, str], path: str) -> dict[str, Any]:
    """The proposed sections, and notes that explain each guess."""
    targets = target_candidates(frame)
    target = targets[0] if targets else None
    positive = positive_label(frame[target]) if target else None
    personal = looks_personal(frame, exclude={target})
    ids = sorted(id_candidates(frame), key=lambda c: c in personal)  # a personal id last
    times = time_candidates(frame, CleanParams().date_formats)
    post = post_outcome_candidates(frame, target, positive or "")
    taken = {target, *ids[:1], *times[:1], *post, *personal}
    low = [
        str(c)
        for c in frame.columns
        if c not in taken and 2 <= frame[c].nunique() <= 10 and _numbers(frame[c]).isna().all()
    ]
    sensitive = [str(c) for c in frame.columns if SENSITIVE_NAMES.search(str(c)) and c not in taken]
    collect: dict[str, Any] = {
        "source": "parquet" if not fmt else "csv",
        "path": path,
        "window": None,
    }
    if fmt:
        collect["csv"] = fmt
    if personal:  # an id that is personal is kept as a pseudonym: it still joins
        collect["pii"] = {c: "pseudonymise" if ids and c == ids[0] else "drop" for c in personal}
    problem = {
        "name": Path(path).stem,
        "question": f"Which rows will have {target} = {positive!r}?" if target else "",
        "metric_reason": "",
        "target": target,
        "positive_label": positive,
        "id_column": ids[0] if ids else None,
        "time_column": times[0] if times else None,
        "post_outcome_columns": sorted(post),
        "baseline": {"majority_class": True, "rule": None},
    }
    labels = sorted(_norm(frame[target]).unique()) if target else []
    notes = [
        f"{len(frame):,} rows x {len(frame.columns)} columns",
        f"target candidates (two values): {targets or 'none: this workflow needs a binary target'}",
        f"positive label: {positive!r} of {labels}",
        f"id candidates (unique): {ids or 'none: id_column null, rows are keyed by position'}",
        f"time candidates: {times or 'none'}",
        *[f"post-outcome? {c}: {why}" for c, why in post.items()],
        *[
            f"personal? {c}: {why} (collect.pii: drop, or pseudonymise with CHURN_PII_KEY)"
            for c, why in personal.items()
        ],
        f"evaluate.slices candidates: {low[:5] or 'none'}; sensitive: {sensitive or 'none'}",
    ]
    return {
        "collect": collect,
        "problem": problem,
        "evaluate": {"slices": low[:3], "sensitive": sensitive[:2]},
        "notes": notes,
    }


def render(proposal: dict[str, Any]) -> str:
    """The sections as YAML, every label quoted (YAML would read a bare Yes as true)."""
    notes = "\n".join(f"#   {n}" for n in proposal["notes"])
    body = yaml.safe_dump(
        {k: proposal[k] for k in ("collect", "problem")}, sort_keys=False, allow_unicode=True
    )
    ev = proposal["evaluate"]
    return (
        f"# proposed by make init (review before running):\n{notes}\n{body}"
        f"# in the evaluate section:\n#   slices: {ev['slices']}\n"
        f"#   sensitive: {ev['sensitive']}\n"
    )


def write_params(params_file: Path, proposal: dict[str, Any]) -> None:
    """Replace ``collect`` and ``problem`` and set ``evaluate.slices``/``sensitive`` in place."""
    text = params_file.read_text(encoding="utf-8")
    for section in ("collect", "problem"):
        current = yaml.safe_load(text)[section]
        merged = {**current, **proposal[section]}
        if section == "collect":
            merged = {k: v for k, v in merged.items() if k != "simulator"} | {
                "simulator": current.get("simulator", {})
            }
        block = yaml.safe_dump({section: merged}, sort_keys=False, allow_unicode=True)
        text = re.sub(rf"(?ms)^{section}:.*?(?=^\S)", block + "\n", text, count=1)
    for key in ("slices", "sensitive"):
        value = yaml.safe_dump(proposal["evaluate"][key], default_flow_style=True).strip()
        text = re.sub(rf"(?m)^  {key}:.*\n(?:  +- .*\n)*", f"  {key}: {value}\n", text, count=1)
    yaml.safe_load(text)  # still valid YAML
    write_text(params_file, text)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m tasks.core.quality.inspect FILE [--write]``."""
    parser = argparse.ArgumentParser(prog="make init", description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the file, under data/ (e.g. data/external/churn.csv)")
    parser.add_argument("--write", action="store_true", help="update params.yaml in place")
    args = parser.parse_args(argv)
    root = find_project_root()
    path = Path(args.data)
    if not (root / path).is_file():
        print(f"{path}: no such file (put it under data/external/)", file=sys.stderr)
        return 2
    frame, fmt = read(root / path)
    proposal = propose(frame, fmt, path.as_posix())
    print(render(proposal))
    if proposal["problem"]["target"] is None:
        print("no two-valued column: nothing to predict as it is", file=sys.stderr)
        return 1
    if args.write:
        write_params(root / PATHS.params, proposal)
        print(f"wrote collect and problem in {PATHS.params}; review them, then make run")
    else:
        print("nothing written; WRITE=1 updates params.yaml")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
