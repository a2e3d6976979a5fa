"""Figures of the docs that are drawn, not captured: the ten steps and the loop.

    python -m devtools.docs_figures      # writes docs/img/loop.png

The screenshots of real runs come from ``devtools/screenshots.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "img"

STEPS = [  # number, title, the stage or flow that does it
    (3, "Collect", "immutable\nsnapshot"),
    (1, "Problem\n& KPIs", "definition\nchecked"),
    (2, "Feasibility", "go / no-go"),
    (4, "Clean\n& explore", "Great Expectations\nsuite, EDA"),
    (5, "Features", "engineered,\ndescribed"),
    (6, "Split\n& leakage", "leakage audit\n(Great Expectations)"),
    (7, "Choose\nmodel", "CV of\ncandidates"),
    (8, "Train\n& tune", "search,\ncost threshold"),
    (9, "Evaluate", "sealed test,\nthe gate"),
    (10, "Deploy\n& monitor", "registry, API,\nmonitoring"),
]


def loop_figure(path: Path) -> None:
    """The training flow's ten steps left to right, and the monitoring loop back to collect."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=(13, 3.6))
    ax.set_xlim(0, 10.4)
    ax.set_ylim(-1.2, 1.55)
    ax.axis("off")
    for k, (number, title, what) in enumerate(STEPS):
        x = 0.2 + k * 1.02
        color = "#e8eaf6" if number < 10 else "#e8f5e9"
        ax.add_patch(
            FancyBboxPatch(
                (x, 0), 0.86, 1.0, boxstyle="round,pad=0.03", fc=color, ec="#3949ab", lw=1.2
            )
        )
        ax.text(x + 0.43, 0.88, f"step {number}", ha="center", fontsize=8, color="#555")
        ax.text(x + 0.43, 0.58, title, ha="center", va="center", fontsize=9.5, weight="bold")
        ax.text(x + 0.43, 0.2, what, ha="center", va="center", fontsize=7, color="#333")
        if k < len(STEPS) - 1:
            ax.annotate(
                "",
                (x + 1.02, 0.5),
                (x + 0.89, 0.5),
                arrowprops={"arrowstyle": "->", "color": "#3949ab"},
            )
    ax.text(
        4.8,
        1.35,
        "training flow (Prefect) = dvc.yaml stages, one task each; DVC versions every output",
        ha="center",
        fontsize=10,
    )
    loop = FancyArrowPatch(
        (9.6, -0.05),
        (0.6, -0.05),
        connectionstyle="arc3,rad=-0.12",
        arrowstyle="->",
        mutation_scale=14,
        color="#2e7d32",
        lw=1.6,
    )
    ax.add_patch(loop)
    ax.text(
        5.1,
        -0.85,
        "monitoring flow (scheduled): drift (Evidently), performance estimated before the "
        "labels (CBPE), live performance;\nan alert requests retraining: the training flow "
        "runs again on the new window, a better model becomes champion",
        ha="center",
        fontsize=9,
        color="#2e7d32",
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str]) -> int:
    loop_figure(OUT / "loop.png")
    print(f"wrote {(OUT / 'loop.png').relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
