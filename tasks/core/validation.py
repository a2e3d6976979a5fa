"""Great Expectations: load suites from ``expectations/*.json``, validate frames, propose suites.

Suites are plain JSON files in the top-level ``expectations/`` folder, reviewed and
committed like code. They are validated with an ephemeral Great Expectations context
(pandas engine); Data Docs are written to ``reports/data_docs/``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.errors import StepError
from tasks.core.io import write_json

log = logging.getLogger("churn.validation")


@dataclass(frozen=True)
class CheckResult:
    """One expectation's outcome, in words a user can act on."""

    expectation: str
    column: str | None
    success: bool
    observed: str


def _context(docs_dir: Path | None):  # noqa: ANN202 - a GX context
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    import tasks.core.gx_expectations  # noqa: F401 - registers the custom expectations

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
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
    return context


def read_suite_file(path: Path) -> dict[str, Any]:
    """Read a suite's JSON file."""
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StepError("validation", "suite file", f"{path} could not be read as JSON: {exc}") from None
    if not isinstance(spec, dict) or "expectations" not in spec:
        raise StepError("validation", "suite file", f"{path} is not a suite (no 'expectations' list)")
    return spec


def build_suite(context: Any, spec: dict[str, Any], source: str):  # noqa: ANN201
    """Turn a suite's JSON into a GX suite, refusing one that loses expectations on load.

    Great Expectations silently drops an expectation whose class is not registered, which
    would pass bad data; here that is an error naming the missing types.
    """
    import great_expectations as gx

    wanted = spec["expectations"]
    suite = context.suites.add(gx.ExpectationSuite(name=spec.get("name", source), expectations=wanted,
                                                   meta=spec.get("meta") or {}))
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


def validate_frame(
    frame: pd.DataFrame,
    spec: dict[str, Any],
    name: str,
    docs_dir: Path | None = None,
    index_column: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> list[CheckResult]:
    """Validate ``frame`` against a suite spec; build Data Docs into ``docs_dir`` if given.

    Parameters
    ----------
    frame : DataFrame
    spec : dict
        The suite JSON.
    name : str
        Used for the batch and the Data Docs page.
    docs_dir : Path, optional
    index_column : str, optional
        A column naming each row, reported for failing rows.
    parameters : dict, optional
        Values for the suite's ``{"$PARAMETER": name}`` placeholders.

    Returns
    -------
    list of CheckResult
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    context = _context(docs_dir)
    suite = build_suite(context, spec, name)
    asset = context.data_sources.add_pandas(f"{name}-source").add_dataframe_asset(name)
    batch_definition = asset.add_batch_definition_whole_dataframe("all-rows")
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch_definition, suite=suite, name=f"{name}-validation")
    )
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 5}
    if index_column:
        result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": [index_column]}
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{name}-checkpoint",
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data-docs")] if docs_dir is not None else [],
            result_format=result_format,
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters or None)
    out = []
    for validation in run.run_results.values():
        for r in validation.results:
            cfg = r.expectation_config
            out.append(CheckResult(cfg.type, cfg.kwargs.get("column"), bool(r.success),
                                   "ok" if r.success else _observed(r)))
    return out


def failures_message(results: list[CheckResult], suite_path: str) -> str:
    """Every failed check with its observed value, one per line."""
    failed = [r for r in results if not r.success]
    lines = [f"{len(failed)} of {len(results)} checks in {suite_path} failed:"]
    lines += [f"  - {r.expectation}({r.column or ''}): {r.observed}" for r in failed]
    return "\n".join(lines)


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
    expectations: list[dict[str, Any]] = []

    def add(kind: str, **kwargs: Any) -> None:
        expectations.append({"type": kind, "kwargs": kwargs})

    for column, kind in kinds.items():
        values = frame[column]
        add("expect_column_to_exist", column=column)
        null_share = float(values.isna().mean())
        ceiling = min(1.0, round(null_share + null_margin, 4)) if null_share > 0 else 0.0
        if ceiling < 1.0:
            add("expect_column_values_to_not_be_null", column=column, mostly=round(1 - ceiling, 4))
        if kind == "id":
            add("expect_column_values_to_be_unique", column=column, mostly=0.95)
        elif kind == "target":
            add("expect_column_values_to_be_in_set", column=column, value_set=[0.0, 1.0])
        elif kind == "numeric" and values.notna().any():
            low, high = float(values.min()), float(values.max())
            add("expect_column_values_to_be_between", column=column, min_value=low, max_value=high, mostly=mostly)
        elif kind == "categorical":
            value_set = sorted(str(v) for v in values.dropna().unique())
            add("expect_column_values_to_be_in_set", column=column, value_set=value_set, mostly=mostly)
    return {
        "name": name,
        "expectations": expectations,
        "meta": {"column_kinds": kinds, "proposed_from": source,
                 "notes": "Proposed from the first snapshot of this source. Review, adjust and commit."},
    }


def save_suite(path: Path, spec: dict[str, Any]) -> None:
    """Write a suite file atomically."""
    write_json(path, spec)
