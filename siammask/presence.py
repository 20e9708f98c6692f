"""Presence: how likely the target is in view, apart from where the box head puts it.

The box head's score answers "where is the best match in this window" and stays near 1 on an
empty road. Presence compares the appearance at the tracked box with the target's verified
appearance instead. The template network's cls and loc kernels of a crop around the box give two
views of it, weighed alike: what the target is made of (each channel averaged over the kernel's
central half: a target seen from another side or in another pose still matches) and how it is laid
out (the kernels' 2x2-pooled layout, projected by a linear map trained on the project's own
training data: another object made of similar stuff does not match). Their joint unit embedding's
cosine similarity to the first frame's target (or to a running mean of verified frames, whichever
is higher) is normalised by how similar the target's surroundings are to it (`contrast`: measured
on the first frame, and again by the tracker on frames of doubt), and a logistic curve fitted on
tracked training sequences with synthetic disappearances (`siammask fit-presence`) turns that
into a probability.

Variants without a trained model (the official ResNet checkpoints) use the same steps with the
raw layout (no map) and the default curve: the best estimate available to them, not calibrated.
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
    """mean/projection: a trained linear map of the layout half of appearance vectors (None: the
    raw layout); presence = sigmoid(slope * (contrast - offset))."""

    mean: np.ndarray | None
    projection: np.ndarray | None
    slope: float = DEFAULT_CURVE[0]
    offset: float = DEFAULT_CURVE[1]

    def embed(self, vectors: np.ndarray) -> np.ndarray:
        """(B,D) appearance vectors -> (B,d) unit embeddings: the parts half as it is, the layout half
        mapped, each of unit length, so that two embeddings' cosine similarity is the mean of the
        halves' similarities."""
        x = np.asarray(vectors, np.float32)
        if self.projection is not None:
            split = x.shape[1] - self.projection.shape[0]
            if split <= 0:
                raise UserError(f"the presence model maps {self.projection.shape[0]} values, but this network's "
                                f"appearance vectors have {x.shape[1]}: it was trained for another network")
            x = np.concatenate([x[:, :split], _unit((x[:, split:] - self.mean) @ self.projection)], axis=1)
        return _unit(x)

    def probability(self, contrast: float | np.ndarray) -> float | np.ndarray:
        """Presence in [0, 1] from the normalised similarity."""
        return 1.0 / (1.0 + np.exp(-self.slope * (np.asarray(contrast, np.float64) - self.offset)))


def appearance(cls_kernel: np.ndarray, loc_kernel: np.ndarray) -> np.ndarray:
    """(B,C,H,W) cls and loc template kernels -> (B, 2C + L) float32 appearance vectors, two halves of
    unit length each. Parts (2C): each channel's mean over the kernel's central half (where the
    target is; the rest is its context), cls and loc joined and centred: a target that turns or
    crouches keeps its parts. Layout (L): each kernel 2x2-pooled (when its sides are even),
    flattened and scaled to unit length, joined: another object of the same stuff is laid out
    otherwise."""
    kernels = [np.asarray(k, np.float32) for k in (cls_kernel, loc_kernel)]
    parts = np.concatenate([_central(k).mean(axis=(2, 3)) for k in kernels], axis=1)
    layout = np.concatenate([_unit(_pooled(k).reshape(len(k), -1)) for k in kernels], axis=1)
    return np.concatenate([_unit(parts - parts.mean(axis=1, keepdims=True)), _unit(layout)], axis=1)


def layout_half(vectors: np.ndarray, channels: int) -> np.ndarray:
    """The layout half of (B,D) appearance vectors of kernels with `channels` cls and loc channels in
    all (appearance puts one parts value per channel first): what a projection is trained on."""
    return np.asarray(vectors)[:, channels:]


def _central(k: np.ndarray) -> np.ndarray:
    """(B,C,H,W) -> the kernel without a quarter of each side on every edge (8x8 -> 4x4; an odd
    side keeps its middle: 5 -> 3, 7 -> 5)."""
    h, w = k.shape[2:]
    return k[:, :, h // 4:h - h // 4, w // 4:w - w // 4]


def _pooled(k: np.ndarray) -> np.ndarray:
    """(B,C,H,W) -> (B,C,H/2,W/2) means of 2x2 cells when both sides are even (four strided adds: 8x
    quicker than a mean over split axes), else the kernel itself."""
    if k.shape[2] % 2 or k.shape[3] % 2:
        return k
    return (k[:, :, 0::2, 0::2] + k[:, :, 1::2, 0::2] + k[:, :, 0::2, 1::2] + k[:, :, 1::2, 1::2]) * 0.25


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def contrast(similarity: float | np.ndarray, background: float) -> float | np.ndarray:
    """Similarity rescaled so that the target's surroundings are 0 and the target itself 1."""
    return (np.asarray(similarity, np.float64) - background) / max(1.0 - background, 1e-6)


# What a presence file's `format` says: 2 = appearance vectors with a parts and a layout half (the
# map, if any, is of the layout half). Files without it (format 1: the whole vector was the layout)
# were fitted for other vectors and are refused.
FORMAT = 2


def save_presence(model: PresenceModel, path: str | Path) -> Path:
    """Write a trained model as a .npz: its format, its curve, and its linear map where it has one
    (float16 projection: half the size, same decisions)."""
    path = Path(path)
    arrays = {"format": np.array(FORMAT), "curve": np.array([model.slope, model.offset], np.float64)}
    if model.projection is not None:
        arrays.update(mean=model.mean.astype(np.float32), projection=model.projection.astype(np.float16))
    np.savez_compressed(path, **arrays)
    return path


def read_presence(path: Path | Traversable) -> PresenceModel:
    """A model written by save_presence; a damaged, foreign or older file is a one-line error."""
    try:
        with path.open("rb") as f, np.load(f) as data:
            version, curve = int(data["format"]), data["curve"]
            mapped = {"mean", "projection"} & set(data.files)
            mean = data["mean"] if "mean" in mapped else None
            projection = data["projection"].astype(np.float32) if "projection" in mapped else None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise UserError(f"'{path}' is not a presence model written by this siammask's fit-presence ({exc}); "
                        "run siammask fit-presence again") from None
    if version != FORMAT:
        raise UserError(f"'{path}' is a presence model of format {version}, this siammask reads {FORMAT}; "
                        "run siammask fit-presence again")
    if curve.shape != (2,) or not np.isfinite(curve).all() or (mean is None) != (projection is None) or (
            mean is not None and (mean.ndim != 1 or projection.ndim != 2 or projection.shape[0] != mean.shape[0]
                                  or 0 in projection.shape or not np.isfinite(mean).all()
                                  or not np.isfinite(projection).all())):
        raise UserError(f"'{path}' holds a malformed presence model (curve {curve.shape}, mean "
                        f"{None if mean is None else mean.shape}, projection "
                        f"{None if projection is None else projection.shape}, or non-finite values)")
    return PresenceModel(mean, projection, float(curve[0]), float(curve[1]))


def load_presence(file: str | None) -> PresenceModel:
    """The shipped model named by a variant (siammask/weights/FILE), or the raw default (None)."""
    if file is None:
        return PresenceModel(None, None)
    return read_presence(resources.files("siammask") / "weights" / file)
