"""Great Expectations: load suites from ``expectations/*.json``, validate frames, propose suites.

Suites are plain JSON files in the top-level ``expectations/`` folder, reviewed and
committed like code. They are validated with an ephemeral Great Expectations context
(pandas engine); Data Docs are written to ``reports/data_docs/``.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.env import telemetry_off
from tasks.core.errors import StepError
from tasks.core.io import iter_parts, write_json
from tasks.core.quality.data_docs import DocsTarget, publish
from tasks.core.quality.pages import unsafe_strings

log = logging.getLogger("churn.validation")


@dataclass(frozen=True)
class CheckResult:
    """One expectation's outcome, in words a user can act on."""

    expectation: str
    column: str | None
    success: bool
    observed: str


def _context(docs_dir: Path | None):  # noqa: ANN202 - a GX context
    telemetry_off()
    import great_expectations as gx

    import tasks.core.quality.expectations  # noqa: F401 - registers the custom expectations

    for name in ["great_expectations", *logging.root.manager.loggerDict]:
        if name.startswith("great_expectations"):
            logging.getLogger(name).setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    if docs_dir is not None:
        context.add_data_docs_site(
            site_name="local",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def read_suite_file(path: Path) -> dict[str, Any]:
    """Read a suite's JSON file."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StepError(
            "validation", "suite file", f"{path} could not be read as JSON: {exc}"
        ) from None
    if not isinstance(spec, dict) or "expectations" not in spec:
        raise StepError(
            "validation", "suite file", f"{path} is not a suite (no 'expectations' list)"
        )
    return spec


def build_suite(context: Any, spec: dict[str, Any], source: str):  # noqa: ANN201
    """Turn a suite's JSON into a GX suite, refusing one that loses expectations on load.

    Great Expectations silently drops an expectation whose class is not registered, which
    would pass bad data; here that is an error naming the missing types.
    """
    import great_expectations as gx

    wanted = spec["expectations"]
    suite = context.suites.add(
        gx.ExpectationSuite(
            name=spec.get("name", source), expectations=wanted, meta=spec.get("meta") or {}
        )
    )
    if len(suite.expectations) != len(wanted):
        loaded = {e.expectation_type for e in suite.expectations}
        lost = sorted({w["type"] for w in wanted} - loaded)
        raise StepError(
            "validation",
            "suite load",
            f"{source}: {len(wanted)} expectations in the file, {len(suite.expectations)} loaded; "
            f"unknown types {lost} (a custom expectation module not imported?)",
        )
    return suite


def load_suite(path: Path) -> tuple[Any, Any, dict[str, Any]]:
    """Load a suite file into a fresh context: ``(context, suite, spec)``."""
    context = _context(None)
    spec = read_suite_file(path)
    return context, build_suite(context, spec, str(path)), spec


def _observed(result: Any) -> str:
    r = result.result or {}
    if r.get("observed_value") is not None:
        return str(r["observed_value"])
    if r.get("unexpected_percent") is not None:
        shown = r.get("unexpected_index_list") or r.get("partial_unexpected_list") or []
        return f"{r['unexpected_percent']:.2f}% unexpected, e.g. {list(shown)[:5]}"
    return "failed"


def _run_suite(
    frame: pd.DataFrame,
    spec: dict[str, Any],
    name: str,
    docs: DocsTarget | None,
    result_format: dict[str, Any],
    parameters: dict[str, Any] | None,
) -> list[Any]:
    """Great Expectations' result for each expectation of ``spec`` on ``frame``."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    started = time.time()
    context = _context(docs.site_dir if docs else None)
    suite = build_suite(context, spec, name)
    asset = context.data_sources.add_pandas(f"{name}-source").add_dataframe_asset(name)
    batch_definition = asset.add_batch_definition_whole_dataframe("all-rows")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch_definition, suite=suite, name=f"{name}-validation")
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{name}-checkpoint",
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data-docs")] if docs is not None else [],
            result_format=result_format,
        )
    )
    run = checkpoint.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=parameters or None,
        run_id=RunIdentifier(run_name=docs.run_name) if docs else None,
    )
    results = [r for validation in run.run_results.values() for r in validation.results]
    if docs is not None:
        failed = sum(not r.success for r in results)
        # the data's names and the values GX reports reach its pages raw: escaped there
        unsafe = unsafe_strings([*map(str, frame.columns), *(r.to_json_dict() for r in results)])
        publish(docs, started, not failed, len(results), failed, unsafe)
    return results


SUMMARY = {"result_format": "SUMMARY", "partial_unexpected_count": 5}


def validate_frame(
    frame: pd.DataFrame,
    spec: dict[str, Any],
    name: str,
    docs: DocsTarget | None = None,
    index_column: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> list[CheckResult]:
    """Validate ``frame`` against a suite spec; add a Data Docs page if ``docs`` is given.

    Parameters
    ----------
    frame : DataFrame
    spec : dict
        The suite JSON.
    name : str
        Used for the batch and the Data Docs page.
    docs : DocsTarget, optional
        The Data Docs site and run name of this validation.
    index_column : str, optional
        A column naming each row, reported for failing rows.
    parameters : dict, optional
        Values for the suite's ``{"$PARAMETER": name}`` placeholders.

    Returns
    -------
    list of CheckResult
    """
    result_format: dict[str, Any] = SUMMARY
    if index_column:
        result_format = {
            "result_format": "COMPLETE",
            "unexpected_index_column_names": [index_column],
        }
    return [
        CheckResult(
            r.expectation_config.type,
            r.expectation_config.kwargs.get("column"),
            bool(r.success),
            "ok" if r.success else _observed(r),
        )
        for r in _run_suite(frame, spec, name, docs, result_format, parameters)
    ]


# ----------------------------------------------------------------------------- partitions
ROW_LEVEL = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
    }
)
"""Expectations judged row by row: their counts add up over partitions, so they run per partition.

Every other expectation (id uniqueness, column existence, statistics of a whole column,
custom ones) needs all rows at once and runs on the whole frame.
"""


def partition_counts(frame: pd.DataFrame, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Row counts of each (row-level) expectation of ``spec`` on one partition."""
    out = []
    for r in _run_suite(frame, spec, "partition", None, SUMMARY, None):
        res = r.result or {}
        out.append(
            {
                "elements": int(res.get("element_count") or 0),
                "unexpected": int(res.get("unexpected_count") or 0),
                "missing": int(res.get("missing_count") or 0),
                "examples": list(res.get("partial_unexpected_list") or [])[:5],
            }
        )
    # a run leaves its objects (and the partition's columns) in reference cycles, which
    # only a full collection frees: without it a step checking part after part grew by
    # about 165 MB a part between collections (1.75 GB after 10 parts of 250k rows)
    gc.collect()
    return out


def combine_counts(expectation: dict[str, Any], counts: list[dict[str, Any]]) -> CheckResult:
    """One expectation's outcome over all rows, from its per-partition counts.

    The same rule Great Expectations applies to the whole column: the share of expected
    values among non-missing ones (among all rows for the null checks) must reach
    ``mostly`` (1 by default).
    """
    kind, kwargs = expectation["type"], expectation.get("kwargs", {})
    unexpected = sum(c["unexpected"] for c in counts)
    if kind in ("expect_column_values_to_not_be_null", "expect_column_values_to_be_null"):
        judged = sum(c["elements"] for c in counts)
    else:
        judged = sum(c["elements"] - c["missing"] for c in counts)
    share = unexpected / judged if judged else 0.0
    success = 1 - share >= float(kwargs.get("mostly", 1.0)) - 1e-12
    examples = [e for c in counts for e in c["examples"]][:5]
    observed = "ok" if success else f"{100 * share:.2f}% unexpected, e.g. {examples}"
    return CheckResult(kind, kwargs.get("column"), bool(success), observed)


SCHEMA_LEVEL = frozenset(
    {
        "expect_column_to_exist",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
    }
)
"""Expectations on the columns alone: every part has the same, so one part answers them."""

UNIQUE = "expect_column_values_to_be_unique"


def suite_groups(spec: dict[str, Any], unique_column: str | None = None) -> dict[str, list[int]]:
    """The positions of ``spec``'s expectations by how data read in parts answers them.

    ``rows``: row-level (counts add up over parts); ``schema``: on the columns alone;
    ``unique``: uniqueness of ``unique_column`` (counted on the buckets of a shuffle on it);
    ``columns``: the rest, run on the whole of the columns they name.
    """
    groups: dict[str, list[int]] = {"rows": [], "schema": [], "unique": [], "columns": []}
    for i, e in enumerate(spec["expectations"]):
        if e["type"] in ROW_LEVEL and not _has_parameters(e):
            groups["rows"].append(i)
        elif e["type"] in SCHEMA_LEVEL:
            groups["schema"].append(i)
        elif (
            e["type"] == UNIQUE
            and unique_column is not None
            and e.get("kwargs", {}).get("column") == unique_column
            and set(e["kwargs"]) <= {"column", "mostly"}
        ):
            groups["unique"].append(i)
        else:
            groups["columns"].append(i)
    return groups


def subsuite(spec: dict[str, Any], positions: list[int]) -> dict[str, Any]:
    """``spec`` with only the expectations at ``positions``."""
    return {**spec, "expectations": [spec["expectations"][i] for i in positions]}


def validate_parts(
    eng: Any,
    path: Path,
    spec: dict[str, Any],
    name: str,
    docs: DocsTarget | None,
    unique_column: str | None,
    unique_counts: list[dict[str, Any]],
) -> list[CheckResult]:
    """:func:`validate_frame` on a Parquet file read part by part, with the same outcome.

    Great Expectations runs every check: the row-level ones on each part (their counts
    added up and judged against ``mostly`` over all rows, :func:`combine_counts`), the
    schema ones on the first part (this run builds the Data Docs page), uniqueness of
    ``unique_column`` on each bucket of a shuffle on it (``unique_counts``: the buckets'
    counts; all rows of an id share a bucket, so the counts add up exactly, and the whole
    column is never read), and any other on the whole of the columns it names, read alone.
    """
    expectations = spec["expectations"]
    groups = suite_groups(spec, unique_column)
    out: dict[int, CheckResult] = {}
    first = None
    per_part: list[list[dict[str, Any]]] = []
    row_spec = subsuite(spec, groups["rows"])
    for k, part in enumerate(iter_parts(path)):
        if first is None:
            first = part
        if groups["rows"]:
            per_part.extend(
                eng.map_partitions(partition_counts, part, f"{name}-checks-{k}", spec=row_spec)
            )
    for k, i in enumerate(groups["rows"]):
        out[i] = combine_counts(expectations[i], [part[k] for part in per_part])
    schema = groups["schema"]
    if schema:
        results = validate_frame(first, subsuite(spec, schema), name, docs)
        out.update(zip(schema, results, strict=True))
    for i in groups["unique"]:
        out[i] = combine_counts(expectations[i], unique_counts)
    for i in groups["columns"]:
        kwargs = expectations[i].get("kwargs", {})
        named = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
        named += list(kwargs.get("column_list") or [])
        frame = pd.read_parquet(path, columns=named or [str(first.columns[0])])
        (out[i],) = validate_frame(frame, subsuite(spec, [i]), name)
    return [out[i] for i in range(len(expectations))]


def _has_parameters(expectation: dict[str, Any]) -> bool:
    return "$PARAMETER" in json.dumps(expectation.get("kwargs", {}))


def failures_message(results: list[CheckResult], suite_path: str) -> str:
    """Every failed check with its observed value, one per line."""
    failed = [r for r in results if not r.success]
    lines = [f"{len(failed)} of {len(results)} checks in {suite_path} failed:"]
    lines += [f"  - {r.expectation}({r.column or ''}): {r.observed}" for r in failed]
    return "\n".join(lines)


def profile(frame: pd.DataFrame, kinds: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What a suite proposal needs to know of each column; profiles of parts add up
    (:func:`merge_profiles`), so a proposal from parts equals one from the whole frame."""
    out: dict[str, dict[str, Any]] = {}
    for column, kind in kinds.items():
        values = frame[column]
        present = values.dropna()
        facts: dict[str, Any] = {"rows": len(values), "nulls": int(len(values) - len(present))}
        if kind == "id":
            facts["ids"] = len(present)
            facts["ids_in_repeated_groups"] = int(present.duplicated(keep=False).sum())
        elif (
            kind in ("numeric", "target")
            and len(present)
            and pd.api.types.is_numeric_dtype(present)
        ):
            facts["min"], facts["max"] = float(present.min()), float(present.max())
        elif kind in ("categorical", "target"):  # a multiclass target: its classes
            facts["values"] = {str(v) for v in present.unique()}
        out[column] = facts
    return out


def merge_profiles(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict:
    """The profile of two parts together (id counts of a part are set from the shuffle)."""
    out = {}
    for column, x in a.items():
        y, m = b[column], {}
        for key in ("rows", "nulls", "ids", "ids_in_repeated_groups"):
            if key in x:
                m[key] = x[key] + y.get(key, 0)
        if "min" in x or "min" in y:
            m["min"] = min(v["min"] for v in (x, y) if "min" in v)
            m["max"] = max(v["max"] for v in (x, y) if "max" in v)
        if "values" in x:
            m["values"] = x["values"] | y["values"]
        out[column] = m
    return out


def propose_suite(
    frame: pd.DataFrame,
    kinds: dict[str, str],
    name: str,
    null_margin: float,
    mostly: float,
    source: dict[str, Any],
) -> dict[str, Any]:
    """A suite describing a standardised snapshot: columns, null ceilings, ranges, sets, ids.

    The kinds are stored in ``meta.column_kinds`` so later snapshots are read the same way.
    """
    return propose_from_profile(profile(frame, kinds), kinds, name, null_margin, mostly, source)


def propose_from_profile(
    facts: dict[str, dict[str, Any]],
    kinds: dict[str, str],
    name: str,
    null_margin: float,
    mostly: float,
    source: dict[str, Any],
    target_values: tuple[float, ...] | None = (0.0, 1.0),
) -> dict[str, Any]:
    """:func:`propose_suite` from a column :func:`profile` (of the whole data, or merged).

    ``target_values``: the values the stored target may take (binary's 0 and 1); None: a
    number, bounded by the range this snapshot holds (regression), or the classes it holds
    (multiclass, text).
    """
    expectations: list[dict[str, Any]] = []

    def add(kind: str, **kwargs: Any) -> None:
        expectations.append({"type": kind, "kwargs": kwargs})

    for column, kind in kinds.items():
        f = facts[column]
        add("expect_column_to_exist", column=column)
        null_share = f["nulls"] / f["rows"] if f["rows"] else float("nan")
        ceiling = min(1.0, round(null_share + null_margin, 4)) if null_share > 0 else 0.0
        if ceiling < 1.0:
            add("expect_column_values_to_not_be_null", column=column, mostly=round(1 - ceiling, 4))
        if kind == "id":
            # GX counts every row of a repeated value as unexpected; the proposal allows what
            # this snapshot holds (the clean step reports and removes exact copies)
            repeated = f["ids_in_repeated_groups"] / f["ids"] if f["ids"] else 0.0
            unique = 1.0 - float(repeated or 0.0)
            add(
                "expect_column_values_to_be_unique",
                column=column,
                mostly=min(0.95, math.floor(unique * 100) / 100),
            )
        elif kind == "target" and target_values is not None:
            add("expect_column_values_to_be_in_set", column=column, value_set=list(target_values))
        elif kind in ("numeric", "target") and "min" in f:  # a regression's target: its range
            add(
                "expect_column_values_to_be_between",
                column=column,
                min_value=f["min"],
                max_value=f["max"],
                mostly=mostly,
            )
        elif kind in ("categorical", "target") and "values" in f:  # a class a later
            # snapshot adds is named in the data docs, not a failure (mostly)
            add(
                "expect_column_values_to_be_in_set",
                column=column,
                value_set=sorted(f["values"]),
                mostly=mostly,
            )
    return {
        "name": name,
        "expectations": expectations,
        "meta": {
            "column_kinds": kinds,
            "proposed_from": source,
            "notes": "Proposed from the first snapshot of this source. Review, adjust and commit.",
        },
    }


def save_suite(path: Path, spec: dict[str, Any]) -> None:
    """Write a suite file atomically."""
    write_json(path, spec)
