"""Presence: how likely the target is in view, apart from where the box head puts it.

The box head's score answers "where is the best match in this window" and stays near 1 on an
empty road. Presence compares the appearance at the tracked box with the target's verified
appearance instead: the template network's cls and loc kernels of a crop around the box, pooled,
centred and projected by a linear map trained on the project's own training data (objects seen in
several frames against other objects and background; `siammask fit-presence`), give a unit
embedding. Its cosine similarity to the first frame's target (or to a running mean of verified
frames, whichever is higher) is normalised by how similar the target's surroundings are to it
(`contrast`: measured on the first frame, and again by the tracker on frames of doubt), and a
logistic curve fitted on tracked training sequences with synthetic disappearances turns that into
a probability.

Variants without a trained model (the official ResNet checkpoints) use the same steps with the
raw pooled kernels (no projection) and the default curve: the best estimate available to them,
not calibrated.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .config import Traversable
from .errors import UserError

# The logistic curve of a model without its own fit (presence 0.5 at contrast 0.5).
DEFAULT_CURVE = (8.0, 0.5)


@dataclass(frozen=True)
class PresenceModel:
    """mean/projection: the trained linear map of appearance vectors (None: raw vectors);
    presence = sigmoid(slope * (contrast - offset))."""

    mean: np.ndarray | None
    projection: np.ndarray | None
    slope: float = DEFAULT_CURVE[0]
    offset: float = DEFAULT_CURVE[1]

    def embed(self, vectors: np.ndarray) -> np.ndarray:
        """(B,D) appearance vectors -> (B,d) unit embeddings."""
        x = np.asarray(vectors, np.float32)
        if self.projection is not None:
            x = (x - self.mean) @ self.projection
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    def probability(self, contrast: float | np.ndarray) -> float | np.ndarray:
        """Presence in [0, 1] from the normalised similarity."""
        return 1.0 / (1.0 + np.exp(-self.slope * (np.asarray(contrast, np.float64) - self.offset)))


def appearance(cls_kernel: np.ndarray, loc_kernel: np.ndarray) -> np.ndarray:
    """(B,C,H,W) cls and loc template kernels -> (B,D) float32 appearance vectors: each kernel
    2x2-pooled (when its sides are even), flattened and scaled to unit length, then joined."""
    parts = []
    for kernel in (cls_kernel, loc_kernel):
        k = np.asarray(kernel, np.float32)
        b, c, h, w = k.shape
        if h % 2 == 0 and w % 2 == 0:  # four strided adds: 8x quicker than a mean over split axes
            k = (k[:, :, 0::2, 0::2] + k[:, :, 1::2, 0::2] + k[:, :, 0::2, 1::2] + k[:, :, 1::2, 1::2]) * 0.25
        flat = k.reshape(b, -1)
        parts.append(flat / np.maximum(np.sqrt(np.einsum("ij,ij->i", flat, flat))[:, None], 1e-12))
    return np.concatenate(parts, axis=1)


def contrast(similarity: float | np.ndarray, background: float) -> float | np.ndarray:
    """Similarity rescaled so that the target's surroundings are 0 and the target itself 1."""
    return (np.asarray(similarity, np.float64) - background) / max(1.0 - background, 1e-6)


def save_presence(model: PresenceModel, path: str | Path) -> Path:
    """Write a trained model as a .npz (float16 projection: half the size, same decisions)."""
    path = Path(path)
    np.savez_compressed(path, mean=model.mean.astype(np.float32), projection=model.projection.astype(np.float16),
                        curve=np.array([model.slope, model.offset], np.float64))
    return path


def read_presence(path: Path | Traversable) -> PresenceModel:
    """A model written by save_presence; a damaged or foreign file is a one-line error."""
    try:
        with path.open("rb") as f, np.load(f) as data:
            mean, projection, curve = data["mean"], data["projection"].astype(np.float32), data["curve"]
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"'{path}' is not a presence model written by siammask fit-presence ({exc})") from None
    if mean.ndim != 1 or projection.ndim != 2 or projection.shape[0] != mean.shape[0] or curve.shape != (2,) \
            or not all(np.isfinite(a).all() for a in (mean, projection, curve)):
        raise UserError(f"'{path}' holds a malformed presence model (shapes {mean.shape}, {projection.shape}, "
                        f"{curve.shape}, or non-finite values)")
    return PresenceModel(mean, projection, float(curve[0]), float(curve[1]))


def load_presence(file: str | None) -> PresenceModel:
    """The shipped model named by a variant (siammask/weights/FILE), or the raw default (None)."""
    if file is None:
        return PresenceModel(None, None)
    return read_presence(resources.files("siammask") / "weights" / file)
