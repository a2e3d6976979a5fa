"""``make init DATA=data/external/<file>``: a ready params.yaml section for a user's own file.

It reads the file as the collect step will (a CSV with its separator, encoding and decimal
comma detected, Parquet, or a table of a SQLite database) and proposes ``collect`` and
``problem``: the likely target (a two-valued column) with its positive label, id candidates
(unique keys), time candidates (any ``clean.date_formats``, ISO 8601 time stamps included),
columns that look known only after the outcome (by name, alone or together with others, at
the leakage audit's threshold), columns that look personal (``collect.pii``, each with its
reason), KPI floors from the best single column, and the ``evaluate.slices`` and
``sensitive`` columns that exist. It prints; with ``--write`` it writes those keys into
``params.yaml`` in a round trip (every other line and comment stays), notes each guess in a
comment, and says which shipped defaults it kept.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import average_precision_score

from tasks.core.config import CleanParams, Params, ParamsError, load_params, parse_params
from tasks.core.data.pii import looks_personal
from tasks.core.data.schema import parse_dates, parse_numbers
from tasks.core.data.sources import decimal_comma
from tasks.core.io import write_text
from tasks.core.metrics import recall_at_precision
from tasks.core.paths import PATHS, find_project_root
from tasks.core.quality.leakage import carrying_columns, single_feature_auc, single_feature_scores

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
    r"(^|[_\s-])(gender|sex|female|male|age|senior|race|ethnicity|ethnic|marital|religion|"
    r"disability|nationality|afam|black|hispanic|minority)([_\s-]|$)",
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


def class_candidates(frame: pd.DataFrame) -> list[str]:
    """Columns of a few classes (:func:`problem_type_of`) with a target-like name, the
    likeliest first (a name that only ends in ``y`` last)."""
    found = [(c, TARGET_NAMES.search(str(c))) for c in frame.columns]
    named = [(c, m) for c, m in found if m and problem_type_of(frame[c])[0] == "multiclass"]
    return [c for c, m in sorted(named, key=lambda cm: cm[1].group().lower() == "y")]


MIN_REGRESSION_VALUES = 20
"""A numeric target with at least this many distinct values is a quantity (regression)."""

MAX_CLASSES = 20
"""A text target with 3 to this many distinct labels (or whole numbers with as many distinct
codes) is one of several classes (multiclass)."""


def problem_type_of(values: pd.Series) -> tuple[str | None, str]:
    """``(type, why)`` of a target column: two values are binary, numbers with many distinct
    values a regression, a few distinct labels (or whole-number codes) multiclass; anything
    else is not a target this workflow takes."""
    distinct = _norm(values.astype("string")).nunique()
    if distinct == 2:
        return "binary", "two values: a yes/no outcome (problem.type binary)"
    numbers = _numbers(values)
    present = values.notna().sum()
    share = float(numbers.notna().sum() / present) if present else 0.0
    if share >= 0.9 and numbers.nunique() >= MIN_REGRESSION_VALUES:
        return "regression", (
            f"numbers with {numbers.nunique():,} distinct values: a quantity, so problem.type "
            "regression (a model predicts the number; judged by RMSE)"
        )
    codes = numbers.dropna()
    whole = share >= 0.9 and bool((codes == codes.round()).all())
    if 3 <= distinct <= MAX_CLASSES and (share < 0.9 or whole):
        shown = ", ".join(sorted(values.dropna().astype("string").str.strip().unique())[:8])
        what = "whole-number codes" if share >= 0.9 else "labels"
        return "multiclass", (
            f"{distinct} distinct {what} ({shown}): one of several classes, so problem.type "
            "multiclass (a probability per class; judged by log loss)"
        )
    return None, (
        f"{distinct} distinct values: neither a yes/no outcome, a few classes (3 to "
        f"{MAX_CLASSES}) nor a quantity; map it to fewer classes in the export"
    )


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


def labels_of(frame: pd.DataFrame, target: str, positive: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The labelled rows, and their labels as 0/1."""
    labelled = frame[frame[target].notna()].reset_index(drop=True)
    return labelled, (labelled[target].str.strip().str.lower() == positive).to_numpy(int)


def _typed(values: pd.Series) -> pd.Series:
    numbers = _numbers(values)
    return numbers if numbers.notna().mean() > 0.9 else values


def column_aucs(frame: pd.DataFrame, target: str, positive: str) -> dict[str, float]:
    """Each column's ROC-AUC alone for the target (none when the labels hold one class)."""
    labelled, y = labels_of(frame, target, positive)
    if y.min() == y.max():
        return {}
    return {
        str(c): single_feature_auc(_typed(labelled[c]), y, seed=0)
        for c in labelled.columns
        if c != target
    }


def post_outcome_candidates(
    frame: pd.DataFrame,
    target: str | None,
    positive: str,
    ceiling: float,
    aucs: dict[str, float],
) -> dict[str, str]:
    """Columns that look known only after the outcome, with the reason.

    By name; by a single-column ROC-AUC of at least ``ceiling`` (the leakage audit's
    ``split.max_single_feature_auc``, so what init keeps the audit accepts); and by a quick
    model over the other columns that reaches ``ceiling`` only with a column (two columns
    that give the label away together, as an actual and a scheduled time give a delay).
    """
    found: dict[str, str] = {}
    if target is None or not aucs:  # no target, or labels of one class
        return found
    labelled, y = labels_of(frame, target, positive)
    for column in frame.columns:
        if column == target:
            continue
        if POST_NAMES.search(str(column)):
            found[str(column)] = "its name suggests it is known only after the outcome"
            continue
        auc = aucs[str(column)]  # alone (column_aucs)
        if auc >= ceiling:
            found[str(column)] = f"alone it predicts {target} with ROC-AUC {auc:.3f}"
    rest = [c for c in labelled.columns if c != target and str(c) not in found]
    X = pd.DataFrame({c: _typed(labelled[c]) for c in rest})
    for column, (with_it, without) in carrying_columns(X, y, ceiling).items():
        found[str(column)] = (
            f"a quick model predicts {target} with ROC-AUC {with_it:.3f} with it and "
            f"{without:.3f} without: with other columns it gives the outcome away"
        )
    return found


def baseline_floors(
    frame: pd.DataFrame,
    target: str,
    positive: str,
    exclude: set[str],
    precision: float,
    aucs: dict[str, float],
) -> tuple[dict[str, float], str]:
    """KPI floors from the best single column (a model must do at least that well), and
    what they came from (``aucs``: :func:`column_aucs`)."""
    labelled, y = labels_of(frame, target, positive)
    best, best_auc = None, 0.5
    for column, auc in aucs.items():
        if column not in exclude and auc > best_auc:
            best, best_auc = column, auc
    rate = float(y.mean())
    target_precision = round(min(precision, max(2 * rate, 0.05)), 2)

    def down(value: float) -> float:
        return float(np.floor(value * 100) / 100)

    if best is None:
        floors = {"roc_auc_min": 0.55, "pr_auc_min": down(rate * 1.1)}
        floors |= {"target_precision": target_precision, "recall_at_target_precision_min": 0.0}
        return floors, f"no column ranks {target} better than chance; positive rate {rate:.3f}"
    scores = single_feature_scores(_typed(labelled[best]), y, seed=0)
    floors = {
        "roc_auc_min": down(max(best_auc, 0.55)),
        "pr_auc_min": down(float(average_precision_score(y, scores))),
        "target_precision": target_precision,
        "recall_at_target_precision_min": down(recall_at_precision(y, scores, target_precision)),
    }
    return floors, (
        f"the best single column, {best}: ROC-AUC {best_auc:.3f}; positive rate {rate:.3f}"
    )


def _roles(frame: pd.DataFrame, target: str | None) -> tuple[dict[str, str], list[str], list[str]]:
    """Personal columns (with why), id candidates (a personal one last), time candidates."""
    personal = looks_personal(frame, exclude={target})
    ids = sorted(id_candidates(frame), key=lambda c: c in personal)
    return personal, ids, time_candidates(frame, CleanParams().date_formats)


def _groups(frame: pd.DataFrame, taken: set[Any]) -> tuple[list[str], list[str]]:
    """Text columns of 2 to 10 values (slice candidates) and sensitive-looking columns."""
    low = [
        str(c)
        for c in frame.columns
        if c not in taken and 2 <= frame[c].nunique() <= 10 and _numbers(frame[c]).isna().all()
    ]
    sensitive = [str(c) for c in frame.columns if SENSITIVE_NAMES.search(str(c)) and c not in taken]
    return low, sensitive


def _collect(
    fmt: dict[str, str], path: str, personal: dict[str, str], ids: list[str]
) -> dict[str, Any]:
    """The proposed ``collect`` section; an id that is personal is kept as a pseudonym (it
    still joins), other personal columns dropped."""
    source = fmt.get("kind", "csv")
    collect: dict[str, Any] = {"source": source, "path": path, "window": None}
    if source == "csv":
        collect["csv"] = {k: v for k, v in fmt.items() if k != "kind"}
    if source == "sql":
        collect.update(path=None, sql={"query": fmt["query"]})
    if personal:
        collect["pii"] = {c: "pseudonymise" if ids and c == ids[0] else "drop" for c in personal}
    return collect


def propose(
    frame: pd.DataFrame,
    fmt: dict[str, str],
    path: str,
    defaults: Params | None = None,
    chosen: str | None = None,
) -> dict[str, Any]:
    """The proposed sections, and notes that explain each guess.

    ``defaults``: the project's current params (the audit's threshold, the KPI precision);
    the shipped defaults when None. ``chosen``: the target column the user named (else the
    likeliest two-valued column, or a target-like name with a few classes); a numeric one
    with many values is proposed as regression, a few labels or codes as multiclass.
    """
    ceiling = defaults.split.max_single_feature_auc if defaults else 0.9
    targets = target_candidates(frame)
    if chosen is not None and chosen not in frame:
        raise ValueError(f"TARGET={chosen}: no such column; columns: {', '.join(map(str, frame))}")
    target = chosen if chosen is not None else (targets[0] if targets else None)
    if target is None:  # no yes/no column: a target-like name of a few classes
        target = next(iter(class_candidates(frame)), None)
    kind, kind_why = problem_type_of(frame[target]) if target else (None, "")
    if target is not None and kind is None:
        raise ValueError(f"TARGET={target}: {kind_why}")
    if kind in PROPOSED:
        return propose_other(frame, fmt, path, target, kind, kind_why, targets)
    positive = positive_label(frame[target]) if target else None
    personal, ids, times = _roles(frame, target)
    aucs = column_aucs(frame, target, positive or "") if target else {}
    post = post_outcome_candidates(frame, target, positive or "", ceiling, aucs)
    taken = {target, *ids[:1], *times[:1], *post, *personal}
    low, sensitive = _groups(frame, taken)
    slices = [c for c in low if c not in sensitive][:5]
    collect = _collect(fmt, path, personal, ids)
    kpis, floors_from = {}, ""
    if target:
        precision = defaults.problem.kpis.target_precision if defaults else 0.5
        kpis, floors_from = baseline_floors(
            frame, target, positive or "", {*taken, *personal} - {target}, precision, aucs
        )
    problem = {
        "name": Path(path).stem,
        "question": f"Which rows will have {target} = {positive!r}?" if target else "",
        "metric_reason": "",
        "target": target,
        "positive_label": positive,
        "id_column": ids[0] if ids else None,
        "time_column": times[0] if times else None,
        "post_outcome_columns": sorted(post),
        "horizon_days": None,
        "label_delay_days": None,
        "kpis": kpis,
        "baseline": {"majority_class": True, "rule": None},
    }
    labels = sorted(_norm(frame[target]).unique()) if target else []
    numeric_sensitive = [c for c in sensitive if _numbers(frame[c]).notna().mean() > 0.9]
    notes = [
        f"{len(frame):,} rows x {len(frame.columns)} columns",
        f"target candidates (two values): {targets or 'none: this workflow needs a binary target'}",
        f"positive label: {positive!r} of {labels}",
        f"id candidates (unique): {ids or 'none: id_column null, rows are keyed by position'}",
        f"time candidates: {times or 'none'}",
        *[f"post-outcome? {c}: {why}" for c, why in post.items()],
        *[
            f"personal? {c}: {why} -> collect.pii {collect['pii'][c]} "
            + (
                "(needs CHURN_PII_KEY set; "
                if collect["pii"][c] == "pseudonymise"
                else "(or pseudonymise, with CHURN_PII_KEY set; "
            )
            + "remove the line if it is not personal)"
            for c, why in personal.items()
        ],
        f"evaluate.slices: {slices or 'none'}; evaluate.sensitive: {sensitive or 'none'}"
        + (f" ({', '.join(numeric_sensitive)} judged in 4 ranges)" if numeric_sensitive else ""),
        f"problem.kpis from {floors_from}" if floors_from else "problem.kpis: no target",
        "kept from the shipped defaults (review them): evaluate.cost (the churn cost matrix), "
        "problem.primary_metric; horizon_days and label_delay_days set to null (not known: "
        "set them if the label looks ahead or arrives late)",
    ]
    return {
        "collect": collect,
        "problem": problem,
        "evaluate": {"slices": slices, "sensitive": sensitive},
        "reasons": {"pii": personal, "post_outcome_columns": post, "kpis": floors_from},
        "notes": notes,
    }


def _quantity(values: pd.Series) -> str:
    numbers = _numbers(values).dropna()
    return f"from {numbers.min():g} to {numbers.max():g}, median {numbers.median():g}"


def _classes(values: pd.Series) -> str:
    shares = values.dropna().astype("string").str.strip().value_counts(normalize=True)
    return "classes " + ", ".join(f"{c} {s:.1%}" for c, s in shares.items())


PROPOSED: dict[str, dict[str, Any]] = {
    "regression": {
        "question": "How much {target}?",
        "metric": "rmse",
        "candidates": ["ridge", "random_forest", "xgboost"],
        "facts": _quantity,
        "bounds": "rmse_max, mae_max or r2_min",
    },
    "multiclass": {
        "question": "Which class of {target} will each row have?",
        "metric": "log_loss",
        "candidates": ["logistic_regression", "random_forest", "xgboost"],
        "facts": _classes,
        "bounds": "log_loss_max, macro_f1_min or accuracy_min",
    },
}
"""What :func:`propose_other` proposes for a target of each type but binary."""


def propose_other(
    frame: pd.DataFrame,
    fmt: dict[str, str],
    path: str,
    target: str,
    kind: str,
    why: str,
    binary_targets: list[str],
) -> dict[str, Any]:
    """The proposal for a target of ``kind`` (:data:`PROPOSED`): its ``problem.type``, its
    metric and no floors yet, its candidates; ids, times, personal data and slices as for a
    binary one (the post-outcome guess needs a yes/no label: the leakage audit's
    one-feature check names such a column at the split)."""
    spec = PROPOSED[kind]
    personal, ids, times = _roles(frame, target)
    low, sensitive = _groups(frame, {target, *ids[:1], *times[:1], *personal})
    collect = _collect(fmt, path, personal, ids)
    problem = {
        "name": Path(path).stem,
        "question": spec["question"].format(target=target),
        "metric_reason": "",
        "type": kind,
        "target": target,
        "positive_label": None,
        "id_column": ids[0] if ids else None,
        "time_column": times[0] if times else None,
        "post_outcome_columns": [],
        "primary_metric": spec["metric"],
        "horizon_days": None,
        "label_delay_days": None,
        "kpis": {},
        "baseline": {"majority_class": True, "rule": None},
    }
    notes = [
        f"{len(frame):,} rows x {len(frame.columns)} columns",
        f"target {target}: {why}; {spec['facts'](frame[target])}",
        f"two-valued columns (binary targets): {binary_targets or 'none'}",
        f"id candidates (unique): {ids or 'none: id_column null, rows are keyed by position'}",
        f"time candidates: {times or 'none'}",
        *[f"personal? {c}: {w} -> collect.pii {collect['pii'][c]}" for c, w in personal.items()],
        f"evaluate.slices: {low[:5] or 'none'}; evaluate.sensitive: {sensitive or 'none'}",
        f"problem.kpis: {{}} (no floors: set {spec['bounds']} once you know what is "
        f"useful); choose.candidates: {', '.join(spec['candidates'])}",
        f"after WRITE=1, make init declares the {kind} plots in dvc.yaml (make plots)",
    ]
    return {
        "collect": collect,
        "problem": problem,
        "choose": {"candidates": spec["candidates"], "params": {}},
        "evaluate": {"slices": [c for c in low if c not in sensitive][:5], "sensitive": sensitive},
        "reasons": {"pii": personal, "post_outcome_columns": {}, "kpis": ""},
        "notes": notes,
    }


def render(proposal: dict[str, Any]) -> str:
    """The sections as YAML, every label quoted (YAML would read a bare Yes as true)."""
    notes = "\n".join(f"#   {n}" for n in proposal["notes"])
    body = yaml.safe_dump(
        {k: proposal[k] for k in ("collect", "problem")}, sort_keys=False, allow_unicode=True
    )
    ev = proposal["evaluate"]
    choose = proposal.get("choose")
    return (
        f"# proposed by make init (review before running):\n{notes}\n{body}"
        f"# in the evaluate section:\n#   slices: {ev['slices']}\n"
        f"#   sensitive: {ev['sensitive']}\n"
        + (f"# in the choose section:\n#   candidates: {choose['candidates']}\n" if choose else "")
    )


def _safe(value: Any) -> Any:
    """``value`` ready for the round-trip writer: a text PyYAML would read as something else
    (``yes``, ``on``, ``1.0``) quoted, lists of texts in flow style, recursively."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import SingleQuotedScalarString

    if isinstance(value, str):
        try:
            plain = yaml.safe_load(value) == value
        except yaml.YAMLError:  # "," or ": " on its own: not a plain scalar
            plain = False
        return value if plain else SingleQuotedScalarString(value)
    if isinstance(value, dict):
        out = CommentedMap()
        for key, item in value.items():
            out[key] = _safe(item)
        return out
    if isinstance(value, list):
        seq = CommentedSeq(_safe(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    return value


def _comment(section: Any, key: str, text: str) -> None:
    section.yaml_add_eol_comment(f"make init: {text}", key, column=40)


def write_params(params_file: Path, proposal: dict[str, Any]) -> None:
    """Write ``collect``, ``problem`` and ``evaluate.slices``/``sensitive`` into params.yaml.

    A round trip (ruamel.yaml): every other line and comment stays as it is; each written key
    that was guessed carries its reason as a comment, and a key kept from the shipped
    defaults that the new data may not fit says so.
    """
    from ruamel.yaml import YAML

    writer = YAML()
    writer.preserve_quotes = True
    writer.width = 4096  # never fold a line the file has on one
    writer.indent(mapping=2, sequence=4, offset=2)
    writer.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    data = writer.load(params_file.read_text(encoding="utf-8"))
    collect, problem, evaluate = data["collect"], data["problem"], data["evaluate"]
    proposed = proposal["collect"]
    for key in ("source", "path", "window", "csv", "sql"):
        if key in proposed:
            collect[key] = _safe(proposed[key])
    collect["pii"] = _safe(proposed.get("pii", {}))  # the old source's columns do not apply
    reasons = proposal["reasons"]
    for column, why in reasons["pii"].items():
        _comment(collect["pii"], column, why)
    replace = proposal["problem"].get("type", "binary") != "binary"
    if "choose" in proposal:
        for key, value in proposal["choose"].items():
            data["choose"][key] = _safe(value)
    for key, value in proposal["problem"].items():
        if key == "kpis" and replace:  # another type's bounds, not merged with binary's
            problem["kpis"] = _safe(value)
            _comment(problem, "kpis", "no floors yet: set rmse_max, mae_max or r2_min")
        elif key == "kpis" and value:
            for name, floor in value.items():
                problem["kpis"][name] = floor
            _comment(problem, "kpis", f"floors from {reasons['kpis']}; raise them to your need")
        elif key != "kpis":
            problem[key] = _safe(value)
    if reasons["post_outcome_columns"]:
        _comment(problem, "post_outcome_columns", "known only after the outcome? see make init")
    _comment(problem, "horizon_days", "not known: set it if the label looks ahead")
    _comment(problem, "label_delay_days", "not known: set how late labels arrive")
    for key in ("slices", "sensitive"):
        evaluate[key] = _safe(proposal["evaluate"][key])
    _comment(evaluate, "cost", "the churn defaults, kept: set the costs of your decisions")
    out = io.StringIO()
    writer.dump(data, out)
    text = out.getvalue()
    parse_params(yaml.safe_load(text))  # still valid params, read as the steps read them
    write_text(params_file, text)


def read_any(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """The file as text cells and how to read it: CSV, Parquet or a SQLite database.

    Raises
    ------
    ValueError
        For any other kind of file, or a SQLite database with no table, naming what to do.
    """
    head = path.read_bytes()[:16]
    if head.startswith(b"SQLite format 3"):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            if not tables:
                raise ValueError(f"{path.name} is a SQLite database with no table")
            table = tables[0]
            query = f'SELECT * FROM "{table}"'
            frame = pd.read_sql(query, conn).astype("string")
        return frame, {"kind": "sql", "query": query, "tables": ", ".join(tables)}
    if path.suffix.lower() == ".parquet" or head.startswith(b"PAR1"):
        return pd.read_parquet(path).astype("string"), {"kind": "parquet"}
    if b"\0" in path.read_bytes()[:4096]:
        raise ValueError(
            f"{path.name} is neither CSV, Parquet nor a SQLite database: export it as CSV "
            "(or Parquet) into data/external/"
        )
    frame, fmt = read(path)
    return frame, {"kind": "csv", **fmt}


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m tasks.core.quality.inspect FILE [--write]``."""
    parser = argparse.ArgumentParser(prog="make init", description=__doc__.splitlines()[0])
    parser.add_argument("data", help="the file, under data/ (e.g. data/external/churn.csv)")
    parser.add_argument("--write", action="store_true", help="update params.yaml in place")
    parser.add_argument("--target", help="the column to predict (default: a two-valued one)")
    args = parser.parse_args(argv)
    root = find_project_root()
    path = Path(args.data)
    if not (root / path).is_file():
        print(f"{path}: no such file (put it under data/external/)", file=sys.stderr)
        return 2
    try:
        frame, fmt = read_any(root / path)
    except (ValueError, OSError, sqlite3.Error) as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    try:
        defaults = load_params(root / PATHS.params)
    except ParamsError:
        defaults = None
    try:
        proposal = propose(frame, fmt, path.as_posix(), defaults, args.target)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(render(proposal))
    if fmt["kind"] == "sql":
        print(
            f"a SQLite database (tables: {fmt['tables']}); collect reads it through SQL: "
            f"export CHURN_SQL_URL=sqlite:///{(root / path).resolve()} (or put it in .env)"
        )
    if proposal["problem"]["target"] is None:
        print("no two-valued column: nothing to predict as it is", file=sys.stderr)
        return 1
    if args.write:
        write_params(root / PATHS.params, proposal)
        print(f"wrote collect, problem and evaluate in {PATHS.params}; review them, then make run")
    else:
        print("nothing written; WRITE=1 updates params.yaml")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
