"""The model variants as data: which network, and the tracker geometry that goes with it.

One tracker serves every variant; what differs (the score map's stride and size, anchors or
anchor-free points, how the mask window and the refine crops sit on the grid) is read from here.
Pure data, no framework import, so the tracker and the training targets share it with the model.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Geometry:
    """Where the score map's cells sit in the 255x255 search crop.

    Cell (y, x) is centred at ((x - score_size // 2) * stride, ...) from the crop centre; the mask of a
    cell covers the exemplar-sized window starting (x - base_size / 2) * stride from the crop's corner.
    ratios None means anchor-free: one point per cell predicting distances to the box's sides."""

    stride: int
    base_size: int
    ratios: tuple[float, ...] | None = (0.33, 0.5, 1.0, 2.0, 3.0)
    scales: tuple[float, ...] = (8.0,)

    def score_size(self, exemplar: int, instance: int) -> int:
        return (instance - exemplar) // self.stride + 1 + self.base_size

    @property
    def num_anchors(self) -> int:
        return 1 if self.ratios is None else len(self.ratios) * len(self.scales)

    @property
    def anchor_free(self) -> bool:
        return self.ratios is None


@dataclass(frozen=True)
class RefineLevel:
    """One step of the refine module: the crop of trunk map `map` (0: stride 2, 1: stride 4, 2: stride 8)
    for a grid cell, the window [step*y - pad, step*y - pad + size); the widths of its two branches
    (the crop's: map channels -> mid -> out; the mask so far: out -> out -> out), whose sum is
    upsampled to `side` and convolved to the next level's `out` (1 channel after the last level)."""

    map: int
    pad: int
    step: int
    size: int
    mid: int
    out: int
    side: int


@dataclass(frozen=True)
class RefineGeometry:
    """The refine module's levels, coarsest map first (the order they are applied), and the side of
    the position's deconvolved mask correlation. The mask it gives is `mask` pixels square: the last
    level's output, bilinearly upsampled when that is smaller."""

    levels: tuple[RefineLevel, ...]
    deconv: int
    mask: int = 127

    @property
    def maps(self) -> tuple[int, ...]:
        """The trunk maps it reads, finest first (as the trunk gives them)."""
        return tuple(sorted(level.map for level in self.levels))


@dataclass(frozen=True)
class VariantSpec:
    """arch: 'siammask' (ResNet-style trunk + anchor heads) or 'nano' (NanoTrack trunk + BAN head)."""

    arch: str
    trunk: str
    hidden: int
    refine: bool
    geometry: Geometry
    refine_geometry: RefineGeometry | None = None
    default_hp: str = "davis"
    float32_stages: tuple[str, ...] = ()  # trunk stages kept float32 under bf16 (engines/precision.py)
    # What `--engine auto` runs on a CPU in float32: the back end measured faster for this network
    # (benchmarks/RESULTS.md). nano's many small ops cost PyTorch twice ONNX Runtime's time.
    cpu_engine: str = "torch"
    # The shipped presence model (siammask/weights/FILE, siammask.presence) trained for this network's
    # template kernels; None: raw kernels and the default curve.
    presence: str | None = None


SIAMMASK_GEOMETRY = Geometry(stride=8, base_size=8)
# The original's refine: 61/31/15 cells of the stride-2/4/8 maps (their window rules, reference section 2).
SIAMMASK_REFINE = RefineGeometry((RefineLevel(2, 4, 1, 15, 128, 32, 31), RefineLevel(1, 8, 2, 31, 64, 16, 61),
                                  RefineLevel(0, 16, 4, 61, 16, 4, 127)), 15)
# NanoTrack's 15x15 map at stride 16: cell x sits at 16x - 48 .. 16x + 79 in the crop; maps at stride s
# centre their cell j on pixel s*j ('same' padding), so the window holds cells s*j in that range.
NANO_GEOMETRY = Geometry(stride=16, base_size=6, ratios=None)
# Two levels (stride 8 and 4) at half the original's widths, bilinear from 64 to 127 pixels: the
# stride-2 level cost about a third of the mask graph (benchmarks/RESULTS.md, issue 22); the guided filter puts
# the boundary on image edges after paste-back.
NANO_REFINE = RefineGeometry((RefineLevel(2, 6, 2, 16, 64, 16, 32), RefineLevel(1, 12, 4, 32, 32, 8, 64)), 16)
# nano's refine until 2026-12-07: the original's three levels and widths on NanoTrack's maps.
NANO_REFINE_3LEVEL = RefineGeometry((RefineLevel(2, 6, 2, 16, 128, 32, 32), RefineLevel(1, 12, 4, 32, 64, 16, 64),
                                     RefineLevel(0, 24, 8, 64, 16, 4, 127)), 16)

_RESNET_FLOAT32 = ("conv1", "maxpool", "layer1", "layer2")

VARIANT_SPECS: dict[str, VariantSpec] = {
    # The published ResNet-50 models (official checkpoints).
    "sharp": VariantSpec("siammask", "resnet50", 256, True, SIAMMASK_GEOMETRY, SIAMMASK_REFINE, "davis",
                         _RESNET_FLOAT32),
    "base": VariantSpec("siammask", "resnet50", 256, False, SIAMMASK_GEOMETRY, None, "base", _RESNET_FLOAT32),
    # Ours, trained from scratch on the CPU; lite-base is lite's first training stage.
    "lite": VariantSpec("siammask", "lite", 64, True, SIAMMASK_GEOMETRY, SIAMMASK_REFINE, "davis",
                        _RESNET_FLOAT32),
    "lite-base": VariantSpec("siammask", "lite", 64, False, SIAMMASK_GEOMETRY, None, "base", _RESNET_FLOAT32),
    # Ours: NanoTrack V3's pretrained trunk and box head, with a mask branch and refine trained here.
    "nano": VariantSpec("nano", "nanotrack-v3", 64, True, NANO_GEOMETRY, NANO_REFINE, "nano",
                        cpu_engine="onnxruntime", presence="presence_nano.npz"),
}
# nano weights saved before its refine was slimmed (files say 'nano'; siammask.checkpoint tells them apart)
VARIANT_SPECS["nano-3level"] = replace(VARIANT_SPECS["nano"], refine_geometry=NANO_REFINE_3LEVEL)
VARIANTS = tuple(VARIANT_SPECS)


def variant_spec(variant: str) -> VariantSpec:
    """The spec of a variant name; ValueError naming the choices otherwise."""
    if variant not in VARIANT_SPECS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANT_SPECS[variant]
