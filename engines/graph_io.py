"""The names the exported graphs are bound by: what `siammask export` writes and the graph back ends
read. Part of the export-directory contract, with the sidecar (sidecar.py)."""
from __future__ import annotations

from siammask.variants import VARIANT_SPECS

TEMPLATE_IO = (("z",), ("k_cls", "k_loc", "k_mask"))
HEAD_MASK_IO = (("mask_corr", "pos_yx"), ("mask",))


def has_refine(variant: str) -> bool:
    """sharp and lite refine a mask from the trunk maps; base and lite-base read the 63x63 mask head."""
    return VARIANT_SPECS[variant].refine


def refine_maps(variant: str) -> tuple[str, ...]:
    """The trunk maps the mask graph reads, finest first: sharp and lite p0-p2, nano p1 and p2 (the
    stride-4 and stride-8 ones); none for the 63x63 head. The search graph gives exactly these."""
    spec = VARIANT_SPECS[variant]
    return tuple(f"p{m}" for m in spec.refine_geometry.maps) if spec.refine else ()


def search_io(variant: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return ("x", "k_cls", "k_loc", "k_mask"), ("cls", "loc", "mask_corr", *refine_maps(variant))


def mask_io(variant: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not has_refine(variant):
        return HEAD_MASK_IO
    return (*refine_maps(variant), "mask_corr", "pos_yx"), ("mask",)


def mask_size(variant: str) -> int:
    spec = VARIANT_SPECS[variant]
    return spec.refine_geometry.mask if spec.refine else 63
