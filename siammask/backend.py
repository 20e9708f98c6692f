"""The one interface every back end implements: template, track, mask on batches of targets.

It lives in the core, beside the tracker that drives it; the back ends in siammask.engines
implement it, so the tracker never imports them.

Inputs and outputs are numpy arrays so the tracker never depends on a framework; what a back end
keeps per target (its template features) is opaque to the tracker.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


@dataclass
class TrackHeads:
    """Per-batch head outputs: cls (B,10,25,25), loc (B,20,25,25) as float32 numpy; `context` is
    what the back end needs to compute masks later (trunk features, mask correlation)."""

    cls: np.ndarray
    loc: np.ndarray
    context: Any

    def select(self, rows: Sequence[int]) -> "TrackHeads":
        """The heads of some crops only (in this order): numpy or framework arrays alike, the
        context a mapping or a dataclass of them."""
        context = self.context
        if isinstance(context, dict):
            context = {key: value[rows] for key, value in context.items()}
        else:
            context = dataclasses.replace(context, **{f.name: getattr(context, f.name)[rows]
                                                      for f in dataclasses.fields(context)})
        return TrackHeads(self.cls[rows], self.loc[rows], context)


class Engine(Protocol):
    """A SiamMask back end. Batch dimension = targets."""

    name: str
    variant: str
    mask_size: int  # side of the mask logits: 127 (sharp) or 63 (base)

    def template(self, z: np.ndarray) -> Any:
        """(B,3,127,127) float32 raw BGR crops -> opaque template features for B targets."""

    def concat(self, parts: Sequence[Any]) -> Any:
        """Join per-target template features into one batch (order kept)."""

    def track(self, x: np.ndarray, features: Any) -> TrackHeads:
        """(B,3,255,255) float32 search crops against B targets' template features."""

    def mask(self, heads: TrackHeads, pos_yx: np.ndarray) -> np.ndarray:
        """(B,2) int grid positions (y, x) -> (B,S,S) float32 mask logits."""

    def appearance(self, features: Any) -> np.ndarray:
        """Template features of B targets -> (B,D) float32 appearance vectors (siammask.presence)."""
