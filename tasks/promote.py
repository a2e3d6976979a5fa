"""Step 10, promote: register a blessed model and promote it only if it beats the champion.

The training flow calls :func:`register_and_promote` after the DVC pipeline. A blessed
run becomes a new registry version with its card, training schema and a reference sample
for drift checks. It becomes champion only if, on the same recent labelled rows (this
run's sealed test split, the most recent period for a time split), the lower bound of a
paired bootstrap interval of its gain in the primary metric over the champion clears
``promote.promotion_margin`` and no slice loses more than ``promote.slice_tolerance``.
Otherwise it stays registered, not promoted, and the decision says why, with figures
(the comparison: :mod:`tasks.core.ml.comparison`; the registry's command line, ``make
rollback``: :mod:`tasks.core.serving.registry_cli`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.core.config import Params
from tasks.core.io import (
    column_names,
    file_sha256,
    iter_parts,
    parquet_rows,
    read_json,
    take_rows,
)
from tasks.core.ml.comparison import compare, score_version
from tasks.core.ml.models import feature_columns
from tasks.core.ml.objective import objective_for
from tasks.core.ml.reference import reference_from
from tasks.core.paths import PATHS
from tasks.core.serving.registry import ModelVersion, Registry

log = logging.getLogger("churn.promote")


def training_schema(train: pd.DataFrame, params: Params) -> dict[str, Any]:
    """Columns, types, category sets and value ranges of the training inputs."""
    return schema_of_parts([train], params)


def schema_of_parts(parts: Iterable[pd.DataFrame], params: Params) -> dict[str, Any]:
    """:func:`training_schema` of the rows of ``parts`` put together, one part at a time.

    Ranges, missing counts and category sets merge exactly, so the schema is the one of the
    whole split.
    """
    p = params.problem
    seen: dict[str, dict[str, Any]] = {}
    rows, numeric, categorical = 0, [], []
    for part in parts:
        if not seen:
            numeric, categorical = feature_columns(part, {p.id_column, p.target, p.time_column})
        rows += len(part)
        for c in numeric + categorical:
            values = part[c].dropna()
            col = seen.setdefault(c, {"dtype": str(part[c].dtype), "missing": 0, "values": set()})
            col["missing"] += len(part) - len(values)
            if c in categorical:
                col["values"].update(str(v) for v in values.unique())
            elif len(values):
                col["values"].update((float(values.min()), float(values.max())))
    columns = {}
    for c in numeric:
        found = seen[c]["values"]
        columns[c] = {
            "kind": "numeric",
            "dtype": seen[c]["dtype"],
            "min": min(found) if found else None,
            "max": max(found) if found else None,
            "missing_share": seen[c]["missing"] / rows if rows else float("nan"),
        }
    for c in categorical:
        columns[c] = {
            "kind": "categorical",
            "dtype": seen[c]["dtype"],
            "categories": sorted(seen[c]["values"]),
            "missing_share": seen[c]["missing"] / rows if rows else float("nan"),
        }
    return {
        "id_column": p.id_column,
        "target": p.target,
        "time_column": p.time_column,
        "numeric": numeric,
        "categorical": categorical,
        "columns": columns,
    }


def raw_column_kinds(root: Path, params: Params) -> dict[str, str]:
    """The column kinds the clean step used (from the source's suite), so serving cleans the same
    way."""
    from tasks.core.quality.suites import suite_path_for
    from tasks.core.quality.validation import read_suite_file

    spec = read_suite_file(root / suite_path_for(params.clean, params.collect))
    kinds = dict((spec.get("meta") or {}).get("column_kinds") or {})
    report = root / PATHS.clean_json  # columns the suite does not know, as clean typed them
    new = read_json(report).get("new_columns", {}) if report.is_file() else {}
    return {**kinds, **new}


"""A holdout smaller than this gives the reference from the training split."""


def registered_as(
    registry: Registry, model_sha256: str, split_manifest: dict[str, Any]
) -> ModelVersion | None:
    """The registered version with this model file and these train/valid/test splits, if any."""
    for version in registry.versions():
        card = version.card
        if (
            card.get("model_sha256") == model_sha256
            and (card.get("data") or {}).get("split_manifest") == split_manifest
        ):
            return version
    return None


@dataclass(frozen=True)
class Promotion:
    """What registering a run's model did: the version, whether it is champion now, and why."""

    registered: str | None
    promoted: bool
    champion: str | None
    reasons: tuple[str, ...]
    previous: str | None = None
    existing: str | None = None
    comparison: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """As JSON (flow results, artifacts)."""
        return {**asdict(self), "reasons": list(self.reasons)}


def incomparable(
    champion: Any, params: Params, classes: list[str] | None, version: str
) -> str | None:
    """Why a new model cannot be compared with the champion on the same rows (it answers
    another problem, or predicts other classes), or None when it can."""
    theirs = (champion.card.get("params") or {}).get("problem") or {}
    answered = (theirs.get("type", "binary"), theirs.get("target"))
    serve = f"Serve this model on purpose with `make rollback TO={version}`"
    if answered != (params.problem.type, params.problem.target):
        return (
            f"the champion {champion.version} answers another problem ({answered[0]} "
            f"'{answered[1]}'), not this run's ({params.problem.type} "
            f"'{params.problem.target}'): the two cannot be compared, so the champion "
            f"stays. {serve}, or give this problem its own registry (promote.registry_dir)"
        )
    if champion.card.get("classes") != classes:
        return (
            f"the champion {champion.version} predicts the classes "
            f"{champion.card.get('classes')}, this run {classes}: their probabilities cannot "
            f"be compared row by row, so the champion stays. {serve}"
        )
    return None


def register_and_promote(
    root: Path, params: Params, registry: Registry, run: dict[str, Any]
) -> Promotion:
    """Register this run's model if blessed, then promote it if it beats the champion.

    Parameters
    ----------
    root : Path
        Project root holding this run's outputs.
    params : Params
    registry : Registry
    run : dict
        ``flow_run_id``, ``flow_run_name``, ``experiment``, ``code_version``.

    Returns
    -------
    Promotion
    """
    metrics = read_json(root / PATHS.metrics_json)
    if not metrics["blessed"]:
        return Promotion(
            registered=None,
            promoted=False,
            champion=(registry.aliases() or {}).get("champion"),
            reasons=(f"the model was not blessed at evaluation: see {PATHS.model_card}",),
        )
    champion_now = (registry.aliases() or {}).get("champion")
    same = registered_as(
        registry, file_sha256(root / PATHS.model_file), read_json(root / PATHS.split_manifest)
    )
    if same is not None:  # a re-run with nothing changed: the very same model on the very same data
        hint = (
            ""
            if same.version == champion_now
            else f"; `make rollback TO={same.version}` serves it again"
        )
        return Promotion(
            registered=None,
            promoted=False,
            champion=champion_now,
            existing=same.version,
            reasons=(
                f"the same model, trained and tested on the same data, is already registered as "
                f"{same.version}: not registered again{hint}",
            ),
        )
    meta = read_json(root / PATHS.model_meta)
    from tasks.core.ml.models import load_model

    model = load_model(root / PATHS.model_file)
    objective = objective_for(params.problem, meta.get("classes"))
    # The splits are read part by part or by column, never whole.
    paths = {name: root / getattr(PATHS, name) for name in ("train", "valid", "test")}
    reference, reference_record = reference_from(
        {name: parquet_rows(path) for name, path in paths.items()},
        lambda name, rows: take_rows(paths[name], rows),
        model,
        params,
        objective,
        meta["threshold"],
    )
    evaluation = read_json(root / PATHS.evaluation_json)
    card = {
        "model": meta["model"],
        "config": meta["config"],
        "threshold": meta["threshold"],
        **({"classes": meta["classes"]} if "classes" in meta else {}),
        "numeric_features": meta["numeric_features"],
        "categorical_features": meta["categorical_features"],
        "metrics": metrics,
        "gate": evaluation["gate_reasons"],
        "data": {
            **evaluation["data"],
            "split_manifest": read_json(root / PATHS.split_manifest),
            "dvc_lock_sha256": file_sha256(root / "dvc.lock")
            if (root / "dvc.lock").exists()
            else None,
        },
        "params": params.model_dump(mode="json"),
        "environment_sha256": evaluation["environment_sha256"],
        "column_kinds": raw_column_kinds(root, params),
        "validation": {
            "data_quality": read_json(root / PATHS.clean_json),
            "leakage_audit": read_json(root / PATHS.leakage_json),
        },
        "reference": reference_record,
        **run,
    }
    version = registry.register(
        root / PATHS.model_file,
        card,
        schema_of_parts(iter_parts(paths["train"]), params),
        reference,
    )
    log.info(
        "registered %s (%s, test %s %.4f)",
        version.version,
        meta["model"],
        params.problem.primary_metric,
        metrics["test"].get(params.problem.primary_metric, float("nan")),
    )
    champion = registry.champion()
    if champion is None:
        registry.promote(version.version, "first blessed model")
        return Promotion(
            registered=version.version,
            promoted=True,
            champion=version.version,
            reasons=("no champion yet: the first blessed model becomes champion",),
        )
    why = incomparable(champion, params, meta.get("classes"), version.version)
    if why is not None:  # another problem, or other classes: no comparison on the same rows
        return Promotion(
            registered=version.version,
            promoted=False,
            champion=champion.version,
            reasons=(why,),
            previous=champion.version,
        )
    columns = [params.problem.target, *params.evaluate.slices]
    test = pd.read_parquet(
        paths["test"], columns=[c for c in columns if c in column_names(paths["test"])]
    )
    y = objective.labels(test[params.problem.target])
    known = y >= 0  # a label no class of the models: left out (multiclass)
    decision = compare(
        y[known],
        score_version(model, card, paths["test"], objective)[known],
        score_version(registry.load(champion), champion.card, paths["test"], objective)[known],
        test[known].reset_index(drop=True),
        params,
    )
    if decision["promote"]:
        registry.promote(version.version, "; ".join(decision["reasons"]))
    return Promotion(
        registered=version.version,
        promoted=decision["promote"],
        champion=registry.aliases()["champion"],
        reasons=tuple(decision["reasons"]),
        previous=champion.version,
        comparison={k: v for k, v in decision.items() if k not in ("promote", "reasons")},
    )
