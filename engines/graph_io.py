"""The names the exported graphs are bound by: what `siammask export` writes and the graph back ends
read. Part of the export-directory contract, with the sidecar (sidecar.py)."""
from __future__ import annotations

from siammask.variants import VARIANT_SPECS

TEMPLATE_IO = (("z",), ("k_cls", "k_loc", "k_mask"))
SEARCH_IO = (("x", "k_cls", "k_loc", "k_mask"), ("cls", "loc", "mask_corr", "p0", "p1", "p2"))
REFINE_IO = (("p0", "p1", "p2", "mask_corr", "pos_yx"), ("mask",))
HEAD_MASK_IO = (("mask_corr", "pos_yx"), ("mask",))


def has_refine(variant: str) -> bool:
    """sharp and lite refine a mask from the trunk maps; base and lite-base read the 63x63 mask head."""
    return VARIANT_SPECS[variant].refine


def mask_io(variant: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return REFINE_IO if has_refine(variant) else HEAD_MASK_IO


def mask_size(variant: str) -> int:
    return 127 if has_refine(variant) else 63
