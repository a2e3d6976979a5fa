"""What evaluate writes for people: the model card (from a Jinja2 template), the figures and
the curves ``dvc plots`` draws, and ``reports/metrics.json``.

The card's layout is ``templates/model_card.md.j2``; the metric rows and their labels come
from the problem's objective (:mod:`tasks.core.ml.objective`), and every cell that a user's
data fills is escaped for Markdown (:func:`tasks.core.quality.pages.md`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

from tasks.core.config import ProblemParams
from tasks.core.io import atomic_path
from tasks.core.ml.objective import Objective, objective_for
from tasks.core.paths import PATHS
from tasks.core.quality.pages import md

TEMPLATES = Path(__file__).with_name("templates")


def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,  # Markdown, escaped cell by cell with the md filter
        keep_trailing_newline=True,
        trim_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md"] = md
    return env


def model_card(
    problem: ProblemParams,
    meta: dict[str, Any],
    result: dict[str, Any],
    env_hash: str,
    version: str,
) -> str:
    """``reports/model_card.md``."""
    objective = objective_for(problem)
    t = result["test"]
    labels = {n: m.describe(**objective.options) for n, m in objective.metrics.items()}
    headline = [
        (labels[n][:1].upper() + labels[n][1:], t[n])
        for n, m in objective.metrics.items()
        if m.reported
    ]
    ranking = objective.metric(objective.FLOOR_METRIC).label
    oracle = t.get(f"oracle_{objective.FLOOR_METRIC}")
    return (
        _environment()
        .get_template("model_card.md.j2")
        .render(
            name=problem.name,
            blessed=result["blessed"],
            meta=meta,
            data=result["data"],
            version=version,
            rule=objective.describe_rule(meta["threshold"]),
            cost_key=objective.COST_KEY,
            per_class=(result.get("per_class") or {}).get("model"),
            env_hash=env_hash,
            headline=headline,
            test=t,
            ranking=ranking,
            oracle=f"{oracle:.4f}" if oracle is not None else "n/a (not simulator data)",
            summary=[objective.metric(n) for n in objective.SUMMARY],
            baselines=result["baselines"],
            reasons=result["gate_reasons"],
            judged=sorted({s["column"] for s in result["slices"] if s["checked"]}),
            fairness=result["fairness"],
            skipped=result.get("skipped_columns", []),
            importance=objective.metric(objective.FLOOR_METRIC).label,
            top_features=result["top_features"],
        )
    )


def metrics_summary(result: dict[str, Any]) -> dict[str, Any]:
    """``reports/metrics.json``: the headline, the baselines, the lift and the checks."""
    reasons, skipped = result["gate_reasons"], result["skipped_columns"]
    return {
        "blessed": result["blessed"],
        "model": result["model"],
        "test": {
            k: (round(v, 6) if isinstance(v, float) else v) for k, v in result["test"].items()
        },
        "baseline": {
            n: {k: round(v, 6) for k, v in b.items()} for n, b in result["baselines"].items()
        },
        "lift_lower_bound": round(result["lift"]["lower"], 6),
        "checks": {
            "passed": sum(r.startswith("PASS") for r in reasons),
            "failed": sum(r.startswith("FAIL") for r in reasons),
            "skipped": len(skipped),
        },
        "skipped": [f"{s['key']} '{s['column']}': {s['reason']}" for s in skipped],
        **({"per_class": result["per_class"]} if "per_class" in result else {}),
        **({"unseen_classes": result["unseen_classes"]} if "unseen_classes" in result else {}),
    }


def figures(y: np.ndarray, proba: np.ndarray, decision: np.ndarray, folder: Path) -> None:
    """``reports/figures/evaluation.png``: ROC, precision-recall, calibration, confusion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpr, tpr, _ = roc_curve(y, proba)
    precision, recall, _ = precision_recall_curve(y, proba)
    frac_pos, mean_pred = calibration_curve(y, proba, n_bins=10, strategy="quantile")
    cm = confusion_matrix(y, decision)
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8), dpi=90)
    axes[0].plot(fpr, tpr)
    axes[0].plot([0, 1], [0, 1], ":", color="grey")
    axes[0].set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    axes[1].plot(recall, precision)
    axes[1].set(title="Precision-recall", xlabel="recall", ylabel="precision")
    axes[2].plot(mean_pred, frac_pos, marker="o")
    axes[2].plot([0, 1], [0, 1], ":", color="grey")
    axes[2].set(title="Calibration", xlabel="mean predicted", ylabel="observed rate")
    axes[3].imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        axes[3].text(
            j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black"
        )
    axes[3].set(
        title="Confusion matrix", xlabel="predicted", ylabel="actual", xticks=[0, 1], yticks=[0, 1]
    )
    fig.tight_layout()
    with atomic_path(folder / "evaluation.png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def curves(y: np.ndarray, proba: np.ndarray, decision: np.ndarray, root: Path) -> None:
    """The curves ``dvc plots`` draws (``reports/plots/``): ROC, PR, calibration, confusion."""
    fpr, tpr, _ = roc_curve(y, proba)
    precision, recall, _ = precision_recall_curve(y, proba)
    frac_pos, mean_pred = calibration_curve(y, proba, n_bins=10, strategy="quantile")
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 400)).astype(int))
    step = np.unique(np.linspace(0, len(recall) - 1, min(len(recall), 400)).astype(int))
    with atomic_path(root / PATHS.confusion_csv) as tmp:
        pd.DataFrame({"actual": y, "predicted": decision}).to_csv(tmp, index=False)
    for path, frame in (
        (PATHS.roc_csv, pd.DataFrame({"fpr": fpr[keep], "tpr": tpr[keep]})),
        (PATHS.pr_csv, pd.DataFrame({"recall": recall[step], "precision": precision[step]})),
        (
            PATHS.calibration_csv,
            pd.DataFrame({"mean_predicted": mean_pred, "observed_rate": frac_pos}),
        ),
    ):
        with atomic_path(root / path) as tmp:
            frame.round(6).to_csv(tmp, index=False)


def binary_plots(
    _: Objective, y: np.ndarray, scores: np.ndarray, decision: np.ndarray, root: Path
) -> None:
    """A binary model's ``dvc plots`` curves and its figure."""
    curves(y, scores, decision, root)
    figures(y, scores, decision, root / PATHS.figures_dir)


PLOT_ROWS = 2000
"""A regression plot draws at most this many test rows (a seeded, even sample)."""


def regression_plots(
    _: Objective, y: np.ndarray, predicted: np.ndarray, __: np.ndarray, root: Path
) -> None:
    """A regression model's ``dvc plots`` files (predicted against actual, residuals against
    predicted) and its figure: those two and the residuals' distribution."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, predicted = np.asarray(y, float), np.asarray(predicted, float)
    residual = y - predicted
    rows = np.sort(np.random.default_rng(0).choice(len(y), min(len(y), PLOT_ROWS), replace=False))
    for path, frame in (
        (PATHS.predicted_csv, pd.DataFrame({"actual": y[rows], "predicted": predicted[rows]})),
        (
            PATHS.residuals_csv,
            pd.DataFrame({"predicted": predicted[rows], "residual": residual[rows]}),
        ),
    ):
        with atomic_path(root / path) as tmp:
            frame.round(6).to_csv(tmp, index=False)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=90)
    low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
    axes[0].scatter(y[rows], predicted[rows], s=4, alpha=0.4)
    axes[0].plot([low, high], [low, high], ":", color="grey")
    axes[0].set(title="Predicted against actual", xlabel="actual", ylabel="predicted")
    axes[1].scatter(predicted[rows], residual[rows], s=4, alpha=0.4)
    axes[1].axhline(0, linestyle=":", color="grey")
    axes[1].set(title="Residuals", xlabel="predicted", ylabel="actual - predicted")
    axes[2].hist(residual, bins=50)
    axes[2].set(title="Residual distribution", xlabel="actual - predicted", ylabel="rows")
    fig.tight_layout()
    folder = root / PATHS.figures_dir
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "evaluation.png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def multiclass_plots(
    objective: Objective, y: np.ndarray, proba: np.ndarray, decision: np.ndarray, root: Path
) -> None:
    """A multiclass model's ``dvc plots`` files (the confusion matrix by class name, the
    top-label calibration) and its figure: those two and each class's precision and recall."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_fscore_support

    names = np.asarray(objective.known, dtype=object)
    k = len(names)
    top = proba.max(axis=1)
    right = (decision == y).astype(float)
    observed, predicted = calibration_curve(right, top, n_bins=10, strategy="quantile")
    with atomic_path(root / PATHS.confusion_csv) as tmp:
        pd.DataFrame({"actual": names[y], "predicted": names[decision]}).to_csv(tmp, index=False)
    with atomic_path(root / PATHS.top_calibration_csv) as tmp:
        pd.DataFrame({"mean_top_probability": predicted, "observed_accuracy": observed}).round(
            6
        ).to_csv(tmp, index=False)
    cm = confusion_matrix(y, decision, labels=range(k))
    precision, recall, _, _ = precision_recall_fscore_support(
        y, decision, labels=range(k), zero_division=0
    )
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=90)
    axes[0].imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        shade = "white" if v > cm.max() / 2 else "black"
        axes[0].text(j, i, str(v), ha="center", va="center", color=shade)
    axes[0].set(title="Confusion matrix", xlabel="predicted", ylabel="actual")
    axes[0].set_xticks(range(k), names, rotation=45, ha="right")
    axes[0].set_yticks(range(k), names)
    axes[1].plot(predicted, observed, marker="o")
    axes[1].plot([0, 1], [0, 1], ":", color="grey")
    axes[1].set(title="Top-label calibration", xlabel="top probability", ylabel="accuracy")
    at = np.arange(k)
    axes[2].bar(at - 0.2, precision, 0.4, label="precision")
    axes[2].bar(at + 0.2, recall, 0.4, label="recall")
    axes[2].set_xticks(at, names, rotation=45, ha="right")
    axes[2].set(title="Per class", ylim=(0, 1))
    axes[2].legend()
    fig.tight_layout()
    folder = root / PATHS.figures_dir
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "evaluation.png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


PLOT_FILES: dict[str, list[dict[str, dict[str, str]]]] = {
    "binary": [
        {PATHS.roc_csv: {"x": "fpr", "y": "tpr", "title": "ROC (test)"}},
        {PATHS.pr_csv: {"x": "recall", "y": "precision", "title": "Precision-recall (test)"}},
        {
            PATHS.calibration_csv: {
                "x": "mean_predicted",
                "y": "observed_rate",
                "title": "Calibration (test)",
            }
        },
        {
            PATHS.confusion_csv: {
                "template": "confusion",
                "x": "actual",
                "y": "predicted",
                "title": "Confusion matrix at the chosen threshold (test)",
            }
        },
    ],
    "regression": [
        {
            PATHS.predicted_csv: {
                "template": "scatter",
                "x": "actual",
                "y": "predicted",
                "title": "Predicted against actual (test)",
            }
        },
        {
            PATHS.residuals_csv: {
                "template": "scatter",
                "x": "predicted",
                "y": "residual",
                "title": "Residuals against predicted (test)",
            }
        },
    ],
    "multiclass": [
        {
            PATHS.confusion_csv: {
                "template": "confusion",
                "x": "actual",
                "y": "predicted",
                "title": "Confusion matrix, most probable class (test)",
            }
        },
        {
            PATHS.top_calibration_csv: {
                "x": "mean_top_probability",
                "y": "observed_accuracy",
                "title": "Top-label calibration (test)",
            }
        },
    ],
}
"""The ``dvc plots`` files each problem type's evaluation writes, as the evaluate stage of
``dvc.yaml`` declares them (``python -m flows.runtime.plots`` writes that list)."""


PLOTS: dict[str, Callable[[Objective, np.ndarray, np.ndarray, np.ndarray, Path], None]] = {
    "binary": binary_plots,
    "regression": regression_plots,
    "multiclass": multiclass_plots,
}
"""What a run draws for each problem type: its ``dvc plots`` files and figures."""


def draw(
    objective: Objective, y: np.ndarray, scores: np.ndarray, decision: np.ndarray, root: Path
) -> None:
    """The problem type's plots and figures of the sealed test set (:data:`PLOTS`)."""
    PLOTS[objective.type](objective, y, scores, decision, root)
