"""A self-contained HTML report of a dataset: distributions, missing rates, duplicates, label
rate."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np
import pandas as pd

# the histograms' margins, fixed: numbers on both axes fit, and laying out each figure
# (tight_layout draws it once more) would double the cost of a wide table's report
HISTOGRAM_MARGINS = {"left": 0.2, "right": 0.97, "bottom": 0.13, "top": 0.9}


def _figure_png(
    draw: Any, width: float = 4.2, height: float = 2.6, margins: dict[str, float] | None = None
) -> str:
    """One figure as base64 PNG: a bare Figure (no pyplot state), laid out to fit unless
    ``margins`` are given."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=90)
    ax = fig.add_subplot()
    draw(ax)
    if margins is None:
        fig.tight_layout()
    else:
        fig.subplots_adjust(**margins)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode()


def _histogram(ax: Any, values: pd.Series) -> None:
    counts, edges = np.histogram(values.to_numpy(dtype=float), bins=40)
    ax.stairs(counts, edges, fill=True, color="#4f81bd")
    ax.set_ylabel("Frequency")


def _img(png: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def eda_html(
    frame: pd.DataFrame,
    kinds: dict[str, str],
    target: str,
    time_column: str | None,
    facts: dict[str, Any],
    title: str,
) -> str:
    """Render the EDA report.

    Parameters
    ----------
    frame : DataFrame
        The standardised data (before de-duplication, so missing rates are as delivered).
    kinds : dict
        Column kinds.
    target : str
        The target column (a number: its mean by month; text, a multiclass target: each
        class's share by month).
    time_column : str, optional
        When given, the label rate is plotted by month.
    facts : dict
        Headline numbers for the summary table (rows, duplicates...).
    title : str
    """
    missing = frame.isna().mean().sort_values(ascending=False)
    sections = []
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
        for k, v in facts.items()
    )
    sections.append(f"<h2>Summary</h2><table>{rows}</table>")
    top = missing[missing > 0].head(25)
    if not top.empty:
        png = _figure_png(
            lambda ax: (
                top[::-1].plot.barh(ax=ax, color="#c0504d"),
                ax.set_xlabel("share missing"),
            ),
            width=6,
            height=0.3 * len(top) + 1,
        )
        sections.append(f"<h2>Missing values</h2>{_img(png, 'missing rates')}")
    if time_column and time_column in frame and frame[target].notna().any():
        dated = frame.dropna(subset=[time_column]).set_index(time_column)[target]
        if pd.api.types.is_numeric_dtype(dated):
            monthly = dated.resample("MS").mean()
        else:  # one line per class: its share of the month's labelled rows
            monthly = pd.get_dummies(dated.dropna()).astype(float).resample("MS").mean()
        png = _figure_png(
            lambda ax: (monthly.plot(ax=ax, marker="o"), ax.set_ylabel("label rate")), width=6
        )
        sections.append(f"<h2>Label rate over time</h2>{_img(png, 'label rate by month')}")
    cards = []
    for column, kind in kinds.items():
        if kind not in ("numeric", "categorical") or column not in frame:
            continue
        values = frame[column].dropna()
        if values.empty:
            continue
        if kind == "numeric":
            clipped = values.clip(values.quantile(0.005), values.quantile(0.995))
            png = _figure_png(lambda ax, v=clipped: _histogram(ax, v), margins=HISTOGRAM_MARGINS)
        else:
            counts = values.value_counts().head(12)
            png = _figure_png(lambda ax, c=counts: c[::-1].plot.barh(ax=ax, color="#9bbb59"))
        cards.append(
            f"<div class=card><h3>{html.escape(column)} <small>{kind}, "
            f"{missing.get(column, 0):.1%} missing</small></h3>{_img(png, column)}</div>"
        )
    sections.append("<h2>Distributions</h2><div class=grid>" + "".join(cards) + "</div>")
    style = (
        "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}"
        "td{border:1px solid #ccc;padding:3px 8px}.grid{display:flex;flex-wrap:wrap;gap:12px}"
        ".card{border:1px solid #ddd;padding:6px}h3{font-size:14px;margin:4px}small{color:#777}"
    )
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>"
    )
