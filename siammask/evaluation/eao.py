"""VOT's supervised measures: accuracy, failures and the expected average overlap (EAO).

Definitions (Kristan et al., VOT2015/2016 reports; the same as vot-toolkit's EAOCurve/EAOScore):

* A run is cut into segments: each starts at a (re-)initialisation and ends at the next failure
  (overlap 0) or at the end of the sequence. A segment's overlaps are those of the tracked frames
  after its initialisation frame, the failure frame included.
* For a length Ns, a segment that failed contributes the mean of its first Ns overlaps, counting
  0 for every frame after the failure; a segment that reached the end of the sequence contributes
  the same mean only if it holds at least Ns overlaps, and is left out otherwise.
* The EAO curve value at Ns is the mean of the contributions; the EAO score is the mean of the
  curve over Ns in [Nlo, Nhi] inclusive ([108, 371] for VOT2015/2016, [100, 356] for 2017/2018).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .names import VOT2016_INTERVAL
BURN_IN = 10     # frames from each initialisation (itself included) left out of accuracy
SKIP_AFTER = 5   # a failed tracker restarts this many frames after the failure


@dataclass(frozen=True)
class Segment:
    """The overlaps from one initialisation to a failure or the end of the sequence."""

    overlaps: tuple[float, ...]
    failed: bool


def eao_curve(segments: list[Segment], max_length: int) -> np.ndarray:
    """Curve values for Ns = 0..max_length (index Ns; index 0 is NaN, as is any Ns no segment reaches)."""
    curve = np.full(max_length + 1, np.nan)
    if not segments:
        return curve
    padded = np.zeros((len(segments), max_length), np.float64)
    usable = np.zeros((len(segments), max_length), bool)
    for row, segment in enumerate(segments):
        values = np.asarray(segment.overlaps[:max_length], np.float64)
        padded[row, :len(values)] = values
        usable[row] = True if segment.failed else np.arange(1, max_length + 1) <= len(segment.overlaps)
    running_mean = np.cumsum(padded, axis=1) / np.arange(1, max_length + 1)
    counts = usable.sum(axis=0)
    sums = np.where(usable, running_mean, 0.0).sum(axis=0)
    curve[1:] = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return curve


def eao_score(curve: np.ndarray, interval: tuple[int, int]) -> float:
    """Mean of the curve over [Nlo, Nhi]; lengths that no segment reaches are left out (NaN if none)."""
    lo, hi = interval
    values = curve[lo:hi + 1]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def accuracy(overlaps: list[float | None], since_init: list[int], burn_in: int = BURN_IN) -> float:
    """Mean overlap of the tracked, non-failed frames at least `burn_in` frames after their initialisation.

    `overlaps` holds None for initialisation and skipped frames; `since_init` the frame offset from the
    latest initialisation (0 on the initialisation frame)."""
    kept = [o for o, k in zip(overlaps, since_init) if o is not None and o > 0 and k >= burn_in]
    return float(np.mean(kept)) if kept else float("nan")
