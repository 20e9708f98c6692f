"""The 'nano' variant: NanoTrack V3's trunk and anchor-free box head, with SiamMask's mask branch.

Trunk and box head reproduce NanoTrack V3 (Apache-2.0; layer shapes read from its checkpoint,
wiring checked against its published ONNX graphs in tests/test_nano.py). The mask branch and the
refine module are ours, trained on top of the frozen pretrained parts. Stateless like SiamMask:
template(z) -> per-target kernels, track(x, kernels) -> heads, mask_logits(out, positions).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..variants import variant_spec
from .interface import SearchOutput, TemplateFeatures, TrackingNet
from .refine import Refine


def _conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
             bias: bool = False) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=bias),
            nn.BatchNorm2d(cout)]


class HardSwish(nn.Module):
    """x * hardsigmoid(x): the same function as nn.Hardswish, written so that it exports as ONNX
    HardSigmoid + Mul, which TensorRT's parser reads (it has no HardSwish)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.hardsigmoid(x)


class SqueezeExcite(nn.Module):
    """Channel gates from the global average: Linear -> ReLU -> Linear -> hard sigmoid."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Linear(channels, reduced)
        self.expand = nn.Linear(reduced, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.hardsigmoid(self.expand(F.relu(self.reduce(x.mean((2, 3))))))
        return x * gate[:, :, None, None]


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block: kernel, expanded width, output width, squeeze-excite, hard-swish, stride."""

    kernel: int
    hidden: int
    out: int
    se: int  # width of the squeeze-excite bottleneck; 0: none
    hswish: bool
    stride: int


# NanoTrack V3's backbone.features.1..9 (widths read from nanotrackv3.pth).
NANO_BLOCKS = (
    BlockSpec(3, 16, 16, 8, False, 2),
    BlockSpec(3, 72, 24, 0, False, 2),
    BlockSpec(3, 88, 24, 0, False, 1),
    BlockSpec(5, 96, 40, 24, True, 2),
    BlockSpec(5, 240, 40, 64, True, 1),
    BlockSpec(5, 240, 40, 64, True, 1),
    BlockSpec(5, 120, 48, 32, True, 1),
    BlockSpec(5, 144, 48, 40, True, 1),
    BlockSpec(5, 288, 96, 72, True, 1),
)


class InvertedResidual(nn.Module):
    """[1x1 expand ->] depth-wise conv -> [squeeze-excite] -> 1x1 project, residual when shapes allow.
    Without expansion the activation comes before the squeeze-excite, with it after (as trained)."""

    def __init__(self, cin: int, spec: BlockSpec) -> None:
        super().__init__()
        self.act = HardSwish() if spec.hswish else nn.ReLU()
        self.expand = nn.Sequential(*_conv_bn(cin, spec.hidden)) if spec.hidden != cin else None
        self.depthwise = nn.Sequential(*_conv_bn(spec.hidden, spec.hidden, spec.kernel, spec.stride, spec.hidden))
        self.se = SqueezeExcite(spec.hidden, spec.se) if spec.se else None
        self.project = nn.Sequential(*_conv_bn(spec.hidden, spec.out))
        self.residual = spec.stride == 1 and cin == spec.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.act(self.expand(x))
        out = self.depthwise(out)
        if self.expand is None:
            out = self.act(out)
            out = out if self.se is None else self.se(out)
        else:
            out = self.act(out if self.se is None else self.se(out))
        out = self.project(out)
        return x + out if self.residual else out


class NanoTrunk(nn.Module):
    """MobileNetV3-Small-like trunk; returns the maps at stride 2, 4, 8 and 16 (16/16/24/96 channels;
    128/64/32/16 cells for a 255 crop, 8x8 at stride 16 for a 127 template)."""

    channels = (16, 16, 24, 96)

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(3, 16, 3, 2), HardSwish())
        blocks, cin = [], 16
        for spec in NANO_BLOCKS:
            blocks.append(InvertedResidual(cin, spec))
            cin = spec.out
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p0 = self.stem(x)
        p1 = self.blocks[0](p0)
        p2 = self.blocks[2](self.blocks[1](p1))
        return p0, p1, p2, self.blocks[3:](p2)


def xcorr_depthwise_padded(search: torch.Tensor, kernel: torch.Tensor, pad: int = 1) -> torch.Tensor:
    """Per-sample depth-wise correlation with zero padding. The kernel's shifted windows of every
    channel come from one convolution with fixed one-hot filters (an im2col), then each channel's
    windows are weighted by its kernel in one batched matmul: no convolution with runtime weights
    (TensorRT refuses those), a dynamic batch, and few graph nodes. ONNX Runtime spent more on a
    loop of per-tap Slice/Mul/Add nodes than on every convolution of the trunk; this takes about
    half the time of stacking the shifted slices (benchmarks/RESULTS.md)."""
    c, h, w = (int(n) for n in search.shape[1:])  # plain ints: static reshapes; the batch stays dynamic
    kh, kw = (int(n) for n in kernel.shape[2:])
    one_hot = torch.eye(kh * kw, dtype=search.dtype, device=search.device).reshape(kh * kw, 1, kh, kw)
    taps = F.conv2d(search.reshape(-1, 1, h, w), one_hot, padding=pad)         # (B*C, kh*kw, oh, ow)
    oh, ow = h + 2 * pad - kh + 1, w + 2 * pad - kw + 1
    out = torch.matmul(kernel.reshape(-1, 1, kh * kw), taps.reshape(-1, kh * kw, oh * ow))
    return out.reshape(-1, c, oh, ow)


def xcorr_depthwise_one_crop(search: torch.Tensor, kernel: torch.Tensor, pad: int = 1) -> torch.Tensor:
    """The same correlation as one grouped convolution whose weights are the kernel, as NanoTrack's own
    graphs compute it: ~1.3-1.9 ms less per search graph than the im2col on ONNX Runtime's CPU provider
    (benchmarks/RESULTS.md). The group count is the batch times the channels, so a graph traced with
    it takes the batch it was traced with: export/graphs.py traces it for one crop only, beside the
    batched graph."""
    b, c, h, w = (int(n) for n in search.shape)
    out = F.conv2d(search.reshape(1, b * c, h, w), kernel.reshape(b * c, 1, *kernel.shape[2:]), padding=pad,
                   groups=b * c)
    return out.reshape(b, c, out.shape[2], out.shape[3])


def _centre(kernel: torch.Tensor, size: int = 4) -> torch.Tensor:
    """The central size x size cells of a template map (NanoTrack correlates its centre 4x4)."""
    lo = (kernel.shape[-1] - size) // 2
    return kernel[:, :, lo:lo + size, lo:lo + size]


class DepthCorr(nn.Module):
    """1x1 conv+BN on template and search, depth-wise correlation of the template's centre 4x4.
    `one_crop`: correlate as a grouped convolution, for a graph traced for one crop (export/graphs.py)."""

    one_crop = False

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.kernel = nn.Sequential(*_conv_bn(cin, cout, bias=True))
        self.search = nn.Sequential(*_conv_bn(cin, cout, bias=True))

    def forward(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """`kernel` is self.kernel(template map), all 8x8 cells (pointwise, so cropping commutes)."""
        correlate = xcorr_depthwise_one_crop if self.one_crop else xcorr_depthwise_padded
        return correlate(self.search(x), _centre(kernel))


class ChannelAttention(nn.Module):
    """Gates from the global average through two 1x1 convs and a sigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels, 1)
        self.fc2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class PixelCorr(nn.Module):
    """Every template cell against every search cell (one channel per template cell: 64 for 8x8),
    channel attention, then a 2x2 depth-wise and a 1x1 conv: 16x16 -> 15x15."""

    def __init__(self, cin: int, cout: int, cells: int = 64) -> None:
        super().__init__()
        self.kernel = nn.Sequential(*_conv_bn(cin, cout, bias=True))
        self.search = nn.Sequential(*_conv_bn(cin, cout, bias=True))
        self.attention = ChannelAttention(cells)
        self.fuse = nn.Sequential(nn.Conv2d(cells, cells, 2, groups=cells, bias=False), nn.BatchNorm2d(cells),
                                  nn.ReLU6(), *_conv_bn(cells, cells, bias=True))

    def forward(self, x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        s = self.search(x)
        b, c, h, w = s.shape
        corr = torch.matmul(kernel.flatten(2).transpose(1, 2), s.flatten(2)).reshape(b, -1, h, w)
        return self.fuse(self.attention(corr))


def _tower(channels: int, depth: int = 6) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [*_conv_bn(channels, channels, 3, groups=channels), nn.ReLU6(), *_conv_bn(channels, channels)]
    return nn.Sequential(*layers)


class BanHead(nn.Module):
    """NanoTrack's anchor-free head: pixel-wise and depth-wise correlation per branch, merged,
    six depth-wise separable blocks, then 2 class logits or 4 side distances (l, t, r, b) per cell."""

    def __init__(self, channels: int = 96, cells: int = 64) -> None:
        super().__init__()
        self.pw_cls, self.pw_loc = PixelCorr(channels, channels, cells), PixelCorr(channels, channels, cells)
        self.dw_cls, self.dw_loc = DepthCorr(channels, channels), DepthCorr(channels, channels)
        self.merge_cls = nn.Conv2d(channels + cells, channels, 1)
        self.merge_loc = nn.Conv2d(channels + cells, channels, 1)
        self.cls_tower, self.loc_tower = _tower(channels), _tower(channels)
        self.cls_out = nn.Conv2d(channels, 2, 1)
        self.loc_out = nn.Conv2d(channels, 4, 1)

    def kernels(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Template map (B,96,8,8) -> cls and loc kernels (B,192,8,8): pixel-wise, then depth-wise."""
        return (torch.cat([self.pw_cls.kernel(z), self.dw_cls.kernel(z)], 1),
                torch.cat([self.pw_loc.kernel(z), self.dw_loc.kernel(z)], 1))

    def towers(self, x: torch.Tensor, k_cls: torch.Tensor,
               k_loc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Search map (B,96,16,16) + kernels -> the two towers' outputs (B,96,15,15)."""
        c = k_cls.shape[1] // 2
        cls = self.merge_cls(torch.cat([self.pw_cls(x, k_cls[:, :c]), self.dw_cls(x, k_cls[:, c:])], 1))
        loc = self.merge_loc(torch.cat([self.pw_loc(x, k_loc[:, :c]), self.dw_loc(x, k_loc[:, c:])], 1))
        return self.cls_tower(cls), self.loc_tower(loc)


class NanoMaskBranch(nn.Module):
    """Ours: a depth-wise template correlation of its own, fused with both box-head towers into the
    per-cell vector that refine deconvolves into a mask."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.corr = DepthCorr(channels, hidden)
        self.fuse = nn.Sequential(*_conv_bn(2 * channels + hidden, hidden), nn.ReLU())

    def forward(self, x: torch.Tensor, kernel: torch.Tensor, cls_tower: torch.Tensor,
                loc_tower: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([cls_tower, loc_tower, self.corr(x, kernel)], 1))


class NanoSiamMask(TrackingNet):
    """NanoTrack V3 trunk + BAN head (box, score) + mask branch + refine (mask)."""

    @property
    def mask_size(self) -> int:
        """Side of the mask the network predicts in the 127x127 template frame (the refine's)."""
        return self.refine.geometry.mask

    def __init__(self, variant: str = "nano") -> None:
        super().__init__()
        spec = variant_spec(variant)
        self.variant = variant
        self.trunk = NanoTrunk()
        channels = self.trunk.channels
        self.head = BanHead(channels[3])
        self.mask_branch = NanoMaskBranch(channels[3], spec.hidden)
        self.refine = Refine(channels[:3], spec.hidden, spec.refine_geometry)

    def template(self, z: torch.Tensor) -> TemplateFeatures:
        """(B,3,127,127) raw BGR template crops -> per-target kernels (8x8 maps), computed once."""
        f = self.trunk(z)[3]
        k_cls, k_loc = self.head.kernels(f)
        return TemplateFeatures(k_cls, k_loc, self.mask_branch.corr.kernel(f))

    def track(self, x: torch.Tensor, t: TemplateFeatures) -> SearchOutput:
        """(B,3,255,255) search crops -> cls (B,2,15,15) logits, loc (B,4,15,15) side distances in
        crop pixels, the mask vectors (B,hidden,15,15) and the trunk maps refine crops from."""
        p0, p1, p2, f = self.trunk(x)
        cls_tower, loc_tower = self.head.towers(f, t.cls, t.loc)
        mask_corr = self.mask_branch(f, t.mask, cls_tower, loc_tower)
        return SearchOutput(self.head.cls_out(cls_tower), torch.exp(self.head.loc_out(loc_tower)),
                            mask_corr, p0, p1, p2)

    def mask_logits(self, out: SearchOutput, pos_yx: torch.Tensor) -> torch.Tensor:
        """Mask logits (B,127,127) at one grid position (y, x) per target."""
        return self.refine(out.p0, out.p1, out.p2, out.mask_corr, pos_yx)
