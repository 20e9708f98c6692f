"""Export-friendly form of SiamMask's kernel-dependent op, the depth-wise correlation.

TensorRT rejects convolutions whose weights are a runtime input; this version uses only Slice,
Mul and Add and equals heads.xcorr_depthwise (tests/test_export.py). (The position-dependent
refine crop, siammask.model.refine.crop_at, is written with a Gather and traces as it is.)
"""
from __future__ import annotations

import torch


def _window(offset: int, kernel: int) -> slice:
    """Rows offset .. offset+out-1 of the input, written with a negative end so that tracing
    records constant slice bounds instead of shape arithmetic."""
    return slice(offset, offset - kernel + 1 or None)


def xcorr_unrolled(search: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Same as heads.xcorr_depthwise: the sum over the h*w kernel offsets of kernel[..., i, j] times
    the shifted search window, so the kernel is a plain operand rather than convolution weights."""
    kh, kw = (int(n) for n in kernel.shape[-2:])  # plain ints: constant slice bounds in the graph
    out = None
    for i in range(kh):
        for j in range(kw):
            term = kernel[:, :, i:i + 1, j:j + 1] * search[:, :, _window(i, kh), _window(j, kw)]
            out = term if out is None else out + term
    return out
