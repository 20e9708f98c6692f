"""Export-friendly forms of the two kernel- and position-dependent ops of SiamMask.

TensorRT rejects convolutions whose weights are a runtime input, and the per-sample Python
slicing of `crop_at` does not trace into a graph. These versions use only Slice, Mul, Add,
comparisons, Where, Reshape, Transpose and one Gather with runtime indices, and are exactly
equal to the originals (tests/test_export.py checks both against siammask.model).
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


def crop_gather(feature: torch.Tensor, pad: int, step: int, size: int, pos_yx: torch.Tensor) -> torch.Tensor:
    """Same as refine.crop_at: per sample the window [step*y : step*y+size, step*x : step*x+size]
    of the map zero-padded by `pad`, (B,C,size,size). One Gather of whole pixels (all channels) at
    runtime indices; positions in the padding read pixel 0 and are multiplied by 0."""
    c, h, w = (int(n) for n in feature.shape[1:])  # fixed by the input size; only the batch is dynamic
    offsets = torch.arange(size, device=pos_yx.device)
    rows = step * pos_yx[:, 0:1] + offsets - pad                               # (B,size)
    cols = step * pos_yx[:, 1:2] + offsets - pad                               # (B,size)
    inside = (((rows >= 0) & (rows < h))[:, :, None]
              & ((cols >= 0) & (cols < w))[:, None, :])                        # (B,size,size)
    sample = torch.arange(pos_yx.shape[0], device=pos_yx.device)[:, None, None]  # batch stays dynamic
    flat = torch.where(inside, (sample * h + rows[:, :, None]) * w + cols[:, None, :], 0)
    table = feature.permute(0, 2, 3, 1).reshape(-1, c)                         # (B*h*w, C)
    picked = table[flat.reshape(-1)] * inside.reshape(-1, 1).to(feature.dtype)
    return picked.reshape(-1, size, size, c).permute(0, 3, 1, 2)
