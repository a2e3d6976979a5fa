"""Every path the workflow reads or writes, defined once.

All paths are relative to the project root so that ``dvc.yaml`` can name the very same
strings; ``tests/code/test_paths.py`` checks that it does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    """Named project paths (relative strings, POSIX style)."""

    params: str = "params.yaml"
    dvc_yaml: str = "dvc.yaml"

    # data layers
    external_dir: str = "data/external"
    raw_dir: str = "data/01_raw"
    raw_current: str = "data/01_raw/current.json"
    interim_dir: str = "data/02_interim"
    features_dir: str = "data/03_features"
    splits_dir: str = "data/04_splits"
    model_input_dir: str = "data/05_model_input"
    models_dir: str = "models"

    # reports
    reports_dir: str = "reports"
    problem_brief: str = "reports/problem_brief.md"
    problem_json: str = "reports/problem.json"
    feasibility_md: str = "reports/feasibility.md"
    feasibility_json: str = "reports/feasibility.json"
    expectations_dir: str = "expectations"
    leakage_suite: str = "expectations/leakage.json"
    interim_clean: str = "data/02_interim/clean.parquet"
    features_table: str = "data/03_features/features.parquet"
    split_indices: str = "data/04_splits/indices.parquet"
    split_manifest: str = "data/04_splits/manifest.json"
    train: str = "data/05_model_input/train.parquet"
    valid: str = "data/05_model_input/valid.parquet"
    test: str = "data/05_model_input/test.parquet"
    clean_json: str = "reports/clean.json"
    eda_html: str = "reports/eda.html"
    data_docs_dir: str = "reports/data_docs"
    data_docs_raw: str = "reports/data_docs/raw"
    data_docs_leakage: str = "reports/data_docs/leakage"
    features_md: str = "reports/features.md"
    leakage_md: str = "reports/leakage_audit.md"
    leakage_json: str = "reports/leakage_audit.json"
    selection_md: str = "reports/model_selection.md"
    selection_json: str = "reports/model_selection.json"
    model_file: str = "models/model.skops"
    model_meta: str = "models/model_meta.json"
    trials_csv: str = "reports/tuning_trials.csv"
    train_json: str = "reports/train.json"
    metrics_json: str = "reports/metrics.json"
    evaluation_json: str = "reports/evaluation.json"
    model_card: str = "reports/model_card.md"
    plots_dir: str = "reports/plots"
    roc_csv: str = "reports/plots/roc.csv"
    pr_csv: str = "reports/plots/pr.csv"
    calibration_csv: str = "reports/plots/calibration.csv"
    confusion_csv: str = "reports/plots/confusion.csv"
    predicted_csv: str = "reports/plots/predicted.csv"
    residuals_csv: str = "reports/plots/residuals.csv"
    top_calibration_csv: str = "reports/plots/top_label_calibration.csv"
    figures_dir: str = "reports/figures"
    timings_dir: str = "reports/timings"
    env_lock: str = "requirements.lock"

    predictions_dir: str = "data/06_predictions"

    # the last recorded run of this workspace (DVC's temp folder: never committed)
    last_run: str = ".dvc/tmp/churn-last-run.json"
    # what the last collection read (a file's size and time, the simulator's settings), so an
    # unchanged file or simulation is not read again; a SQL source is always queried
    collect_source: str = ".dvc/tmp/churn-collect-source.json"

    # runs started by deployments: isolated worktrees, and the reports each one keeps
    workspaces_dir: str = ".runs"
    runs_dir: str = "runs"

    def under(self, root: Path | str) -> "RootedPaths":
        """Bind the paths to a project root."""
        return RootedPaths(Path(root), self)

    @classmethod
    def names(cls) -> list[str]:
        """Names of all defined paths."""
        return [f.name for f in fields(cls)]


class RootedPaths:
    """The same names as :class:`Paths`, resolved under a project root."""

    def __init__(self, root: Path, paths: Paths) -> None:
        self.root = root
        self._paths = paths

    def __getattr__(self, name: str) -> Path:
        rel = getattr(self._paths, name)
        return self.root / rel

    def rel(self, name: str) -> str:
        """The relative string for ``name``, as written in ``dvc.yaml``."""
        return getattr(self._paths, name)


PATHS = Paths()

PREDICTIONS_DB = "predictions.db"
"""The embedded prediction store's file, inside the registry folder."""
PREDICTION_LOG = "prediction_log"
"""Inside the registry folder: the logged model inputs, as typed Arrow segments per hour."""
REGISTRY_ALIASES = "aliases.json"
RELOAD_MARKER = ".reload"
"""Rewritten by ``/admin/reload``: every API worker watching the registry reloads."""
"""The registry's aliases (champion, previous champion), replaced in one atomic rename."""
REGISTRY_INDEX = "index.jsonl"
"""The registry's record of each version's file hashes."""
MONITORING_REPORTS = "reports"
"""Inside ``monitor.workspace_dir``: each monitoring run's HTML and JSON report."""


def find_project_root(start: Path | None = None) -> Path:
    """Walk up from ``start`` (default: cwd) to the folder holding ``dvc.yaml``.

    Raises
    ------
    FileNotFoundError
        If no parent folder holds a ``dvc.yaml``.
    """
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / PATHS.dvc_yaml).is_file():
            return candidate
    raise FileNotFoundError(
        f"no {PATHS.dvc_yaml} found in {here} or its parents: run this from the project folder"
    )
