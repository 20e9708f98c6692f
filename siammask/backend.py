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

from .presence import appearance


def _numpy(a: Any) -> np.ndarray:
    """A numpy array as it is; a framework tensor (torch) as float32 numpy."""
    return a if isinstance(a, np.ndarray) else a.float().cpu().numpy()


def _join(parts: Sequence[Any]) -> Any:
    """Arrays joined along the batch: numpy's concatenate, or torch.cat for tensors (torch is then
    already imported by the back end that made them; this module never needs it)."""
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    import torch

    return torch.cat(parts)


@dataclass
class TemplateFeatures:
    """The three heads' kernels for B targets: all a network keeps of a template. (B,hidden,5,5)
    each for the ResNet-style variants; nano's cls and loc kernels are (B,192,8,8), its mask's (B,64,8,8).
    Torch tensors from the torch back ends; numpy arrays from those that run the exported graphs
    (ONNX Runtime), which therefore need no torch."""

    cls: Any
    loc: Any
    mask: Any

    def appearance(self) -> np.ndarray:
        """(B,D) float32 appearance vectors of the cls and loc kernels (siammask.presence)."""
        return appearance(_numpy(self.cls), _numpy(self.loc))

    def __getitem__(self, index) -> "TemplateFeatures":
        return TemplateFeatures(self.cls[index], self.loc[index], self.mask[index])

    @staticmethod
    def cat(parts: Sequence["TemplateFeatures"]) -> "TemplateFeatures":
        """Targets joined into one batch (a single part is returned as it is)."""
        if len(parts) == 1:
            return parts[0]
        return TemplateFeatures(*(_join([getattr(p, k) for p in parts]) for k in ("cls", "loc", "mask")))


@dataclass
class TrackHeads:
    """Per-batch head outputs as float32 numpy, cls (B,2K,N,N) and loc (B,4K,N,N) (see
    model.interface.SearchOutput: (B,10,25,25) and (B,20,25,25) for the ResNet-style variants,
    (B,2,15,15) and (B,4,15,15) for nano); `context` is what the back end needs to compute masks
    later (trunk features, mask correlation)."""

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
    mask_size: int  # side of the mask logits: 127 with refine (sharp, lite, nano), 63 without (base, lite-base)

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
