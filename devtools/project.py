"""Throw-away copies of this project, for the tests, ``make demo`` and ``make bench``.

A copy is a fresh git repository holding the checkout's files (tracked ones and new ones
git does not ignore) with a ``params.yaml`` merged from the checkout's, a profile and the
caller's overrides, and its own DVC remote (``.dvc/config`` names a relative folder).
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tasks.core.config import parse_params
from tasks.core.paths import PATHS

REPO = Path(__file__).resolve().parents[1]

# The small profile: a few thousand rows, so a whole pipeline run takes seconds.
SMALL: dict[str, Any] = {
    "collect": {
        "window": {"start": "2024-01-01", "end": "2024-02-29"},
        "simulator": {"customers_per_day": 40},
    },
    "feasibility": {
        "min_labelled_rows": 300,
        "min_minority_rows": 50,
        "sample_rows": 2000,
        "n_permutations": 9,
        "max_permutation_p_value": 0.1,
    },
    # floors suited to a 300-row test set, so the end-to-end run goes through registration
    "problem": {"kpis": {"pr_auc_min": 0.35, "recall_at_target_precision_min": 0.3}},
    "choose": {
        "cv_folds": 3,
        "params": {"random_forest": {"n_estimators": 60, "min_samples_leaf": 5}},
    },
    "train": {"n_trials": 3},
    "evaluate": {"bootstrap_samples": 100, "importance_rows": 500, "slice_min_rows": 50},
}


SPEND: dict[str, Any] = {
    "collect": {"simulator": {"target": "spend_next_30d"}},
    "problem": {
        "name": "subscriber-spend-30d",
        "question": "How much will each subscriber spend in the next 30 days?",
        "type": "regression",
        "target": "spend_next_30d",
        "positive_label": None,
        "post_outcome_columns": [],
        "primary_metric": "rmse",
        "metric_reason": "Budgets are planned in dollars: a large miss costs more than a small.",
        "kpis": {},
        "baseline": {"majority_class": True, "rule": {"column": "monthly_charges"}},
    },
    "choose": {"candidates": ["ridge", "random_forest", "xgboost"], "params": {}},
}
"""The simulator's regression problem: the same customers, their next 30 days' spend."""


MOVE: dict[str, Any] = {
    "collect": {"simulator": {"target": "next_move_30d"}},
    "problem": {
        "name": "subscriber-next-move-30d",
        "question": "What will each subscriber do next month: cancel, downgrade, stay or upgrade?",
        "type": "multiclass",
        "target": "next_move_30d",
        "positive_label": None,
        "post_outcome_columns": [],
        "primary_metric": "log_loss",
        "metric_reason": "Offers are planned from the probabilities, so they must be honest.",
        "kpis": {},
        "baseline": {"majority_class": True, "rule": {"column": "contract"}},
    },
    "choose": {"candidates": ["logistic_regression", "random_forest", "xgboost"], "params": {}},
}
"""The simulator's multiclass problem: the same customers, their next month's move."""


TYPE_BOUND = (("problem", "kpis"), ("choose", "params"))
"""Keys whose shipped (binary) values mean nothing to another problem type: an override of
the type replaces them, as a user writing a regression problem's params does."""


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, recursively (neither is changed)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` and return its stdout."""
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def default_params(repo: Path = REPO) -> dict[str, Any]:
    """The checkout's params.yaml, parsed."""
    return yaml.safe_load((repo / PATHS.params).read_text())


# the project's tooling, not the project: copies leave it out
TOOLING = ("tests/", "benchmarks/", "demo/", "devtools/", ".ci/")


def project_files(repo: Path = REPO, tooling: bool = False) -> list[str]:
    """The checkout's files (tracked, and new ones git does not ignore); tooling if asked."""
    listed = git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    names = dict.fromkeys(name for name in listed.split("\0") if name)
    return [name for name in names if tooling or not name.startswith(TOOLING)]


def profile_params(
    profile: dict[str, Any] | None, overrides: dict[str, Any] | None, repo: Path = REPO
) -> dict[str, Any]:
    """The shipped params with ``profile`` then ``overrides`` merged in, checked.

    Raises
    ------
    pydantic.ValidationError
        If the merged params are not valid (here, not in a step).
    """
    params = deep_merge(deep_merge(default_params(repo), profile or {}), overrides or {})
    for section, key in TYPE_BOUND:  # another problem type: its own, not merged with binary's
        if (overrides or {}).get("problem", {}).get("type", "binary") != "binary":
            params[section][key] = copy.deepcopy((overrides or {}).get(section, {}).get(key, {}))
    parse_params(params)
    return params


def make_project(
    dest: Path,
    overrides: dict[str, Any] | None = None,
    commit: bool = True,
    profile: dict[str, Any] | None = None,
    repo: Path = REPO,
    name: str = "churn-copy",
    tooling: bool = False,
) -> Path:
    """Copy the project into ``dest`` as a fresh git repository.

    Parameters
    ----------
    dest : Path
        Empty (or missing) folder.
    overrides : dict, optional
        Merged into params.yaml on top of ``profile``.
    commit : bool
        Make an initial commit (experiments need one).
    profile : dict, optional
        Params merged first (for example :data:`SMALL`); none: the shipped params.yaml.
    repo : Path
        The checkout to copy.
    name : str
        The copy's git identity.
    tooling : bool
        Copy the tests, benchmarks and demo too (the bench runs ``benchmarks.plain`` there).
    """
    dest.mkdir(parents=True, exist_ok=True)
    for rel in project_files(repo, tooling):
        src = repo / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    params = profile_params(profile, overrides, repo)
    (dest / PATHS.params).write_text(yaml.safe_dump(params, sort_keys=False))
    if params["problem"].get("type", "binary") != "binary":  # as `make plots` does
        from flows.runtime.plots import write as declare_plots

        declare_plots(dest)
    (dest / ".dvc" / "tmp").mkdir(parents=True, exist_ok=True)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "config", "user.name", name)
    git(dest, "config", "user.email", f"{name}@localhost")
    if commit:
        git(dest, "add", "-A")
        git(dest, "commit", "-q", "-m", "project")
    return dest


def steps(repo: Path = REPO) -> list[tuple[str, Any]]:
    """``(stage, module)`` for each stage of ``dvc.yaml``, in its order (``python -m <module>``)."""
    import importlib
    import re

    from flows.runtime.pipeline import load_stages

    out = []
    for stage in load_stages(repo / PATHS.dvc_yaml):
        module = re.search(r"python3?\s+-m\s+([\w.]+)", stage.cmd)
        if module:
            out.append((stage.name, importlib.import_module(module.group(1))))
    return out


def run_in_process(root: Path, run: dict[str, Any]) -> Any:
    """Every step's entry point in this process (no Prefect, no DVC), then register and promote.

    Parameters
    ----------
    root : Path
        The project.
    run : dict
        The run's lineage for the model card (``flow_run_id``, ``flow_run_name``,
        ``experiment``, ``code_version``).

    Returns
    -------
    Promotion or None
        The registration decision; None if a step failed (its message is on stderr).
    """
    import os

    from tasks.core.config import load_params
    from tasks.core.serving.registry import open_registry
    from tasks.core.step import run_step
    from tasks.promote import register_and_promote

    before = Path.cwd()
    os.chdir(root)
    try:
        for name, module in steps(root):
            if run_step(name, module.main) != 0:
                return None
    finally:
        os.chdir(before)
    params = load_params(root / PATHS.params)
    return register_and_promote(root, params, open_registry(root, params), run)


def register_copy(registry: Any, version: str | None = None) -> Any:
    """Register the same model and card as ``version`` (default: the champion) once more: a
    second version to promote, roll back or score in shadow, without training again."""
    source = registry.get(version) if version else registry.champion()
    skip = ("version", "model_sha256", "registered_at")
    card = {k: v for k, v in source.card.items() if k not in skip}
    return registry.register(source.model_path, card, source.schema(), source.reference())
