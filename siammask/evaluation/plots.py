"""PNG figures for the report. matplotlib's Figure API draws off-screen, so no display is needed."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure


def curve_plot(path: Path, x: Sequence[float], curves: Mapping[str, Sequence[float]], xlabel: str, ylabel: str,
               title: str, span: tuple[float, float] | None = None) -> Path:
    """Line plot of one or more curves; `span` shades an x-interval (the EAO averaging range)."""
    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.subplots()
    for label, y in curves.items():
        ax.plot(x, np.asarray(y, np.float64), label=label)
    if span is not None:
        ax.axvspan(*span, color="0.9", zorder=0, label=f"averaged over [{span[0]:g}, {span[1]:g}]")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return path


def bar_plot(path: Path, names: Sequence[str], series: Mapping[str, Sequence[float | None]], ylabel: str,
             title: str) -> Path:
    """Grouped bars of [0, 1] scores per sequence, one group member per series; missing values leave a gap."""
    fig = Figure(figsize=(max(6.0, 0.5 * len(names) * len(series) + 2), 4.5), dpi=100)
    ax = fig.subplots()
    width = 0.8 / max(len(series), 1)
    positions = np.arange(len(names))
    for k, (label, values) in enumerate(series.items()):
        heights = np.array([np.nan if v is None else v for v in values], np.float64)
        ax.bar(positions + (k - (len(series) - 1) / 2) * width, heights, width, label=label)
    ax.set_xticks(positions, names, rotation=45, ha="right", fontsize="small")
    ax.set(ylabel=ylabel, title=title, ylim=(0, 1.02))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    return path
