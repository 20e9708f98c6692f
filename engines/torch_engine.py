"""PyTorch back end (CPU; CUDA where available), in float32, bfloat16 or float16."""
from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from siammask.backend import TemplateFeatures, TrackHeads
from siammask.errors import UserError
from siammask.model import TrackingNet, variant_spec
from siammask.threads import inference_threads


AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class _Float32(nn.Module):
    """Runs the wrapped module in float32 with autocast off."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.module(x.float())


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of `model` (in eval mode) whose Conv2d -> BatchNorm2d pairs inside nn.Sequential
    containers are folded into one convolution: the same function to float rounding (~1e-6
    relative) with one op fewer each, which is most of the cost of small maps (the nano variant's
    towers have 15x15 cells)."""
    model = copy.deepcopy(model).eval()
    for module in list(model.modules()):
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for conv_name, bn_name in zip(names, names[1:]):
            conv, bn = module._modules[conv_name], module._modules[bn_name]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[conv_name] = fuse_conv_bn_eval(conv, bn)
                module._modules[bn_name] = nn.Identity()
    return model


def _bf16_model(model: nn.Module) -> nn.Module:
    """A copy of `model` whose early trunk stages stay float32 under bf16 autocast (see precision.py)."""
    model = copy.deepcopy(model)
    for name in variant_spec(model.variant).float32_stages:
        setattr(model.trunk, name, _Float32(getattr(model.trunk, name)))
    return model


def _compiled(fn):
    """torch.compile (inductor) with frozen weights: convolutions are pre-packed for oneDNN and the
    small element-wise ops fused. The first build is for the first batch size seen; a second batch
    size (targets added or removed, streams batched together) builds once more with the batch
    dimension dynamic, which then serves every size. Freezing is inductor's process-wide setting:
    passed per call through `options` the weights were not frozen (measured ~30% slower), so it is
    set globally; it only affects compiled code."""
    import torch._inductor.config as inductor
    inductor.freezing = True
    return torch.compile(fn)


class TorchEngine:
    """Runs a SiamMask module in inference mode; template features stay on the device.

    Weights and inputs are channels-last: oneDNN's convolutions run about 15% faster that way
    on this CPU (benchmarks/RESULTS.md) with the same float32 arithmetic. bf16 and fp16 run the
    convolutions under autocast: bf16 is the CPU's fast path (AVX-512 BF16 / AMX), applied from
    the trunk's layer3 on (a copy of the model, see precision.py); fp16 is for CUDA only.

    compile=True (engine name 'torch-compile') runs the three graphs through torch.compile: the
    fastest CPU path measured (benchmarks/RESULTS.md), at the price of a build of ~15-30 s per graph
    the first time (inductor caches it on disk for later starts). Grid positions reach the mask
    graph as data (refine.crop_at gathers), so a new position needs no new build."""

    name = "torch"

    def __init__(self, model: TrackingNet, device: str = "cpu", precision: str = "fp32",
                 compile: bool = False) -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda asked for, but this PyTorch has no CUDA device; use --device cpu")
        if precision not in AUTOCAST:
            raise UserError(f"the torch engine runs {', '.join(AUTOCAST)}, not '{precision}'; "
                            "int8 runs on --engine onnxruntime")
        self.device = torch.device(device)
        if inference_threads():  # the process's one thread setting (siammask.threads)
            torch.set_num_threads(inference_threads())
        if precision == "fp16" and self.device.type != "cuda":
            raise UserError("--precision fp16 needs --device cuda with the torch engine; "
                            "on CPU use --precision bf16")
        self.precision = precision
        model = _bf16_model(model) if precision == "bf16" else model
        self.model = fold_batchnorm(model).to(self.device, memory_format=torch.channels_last)
        self.variant = model.variant
        self.mask_size = model.mask_size
        self._template, self._track, self._mask_logits = self.model.template, self.model.track, self.model.mask_logits
        if compile:
            _check_compiler(self.device)
            self.name = "torch-compile"
            self._template, self._track = _compiled(self.model.template), _compiled(self.model.track)
            self._mask_logits = _compiled(self.model.mask_logits)

    def _autocast(self) -> AbstractContextManager:
        dtype = AUTOCAST[self.precision]
        return nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)
        return t.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def template(self, z: np.ndarray) -> TemplateFeatures:
        with self._autocast():
            return self._template(self._tensor(z))

    def concat(self, parts: Sequence[TemplateFeatures]) -> TemplateFeatures:
        return TemplateFeatures.cat(parts)

    def appearance(self, features: TemplateFeatures) -> np.ndarray:
        return features.appearance()

    @torch.inference_mode()
    def track(self, x: np.ndarray, features: TemplateFeatures) -> TrackHeads:
        with self._autocast():
            out = self._track(self._tensor(x), features)
        return TrackHeads(out.cls.float().cpu().numpy(), out.loc.float().cpu().numpy(), out)

    @torch.inference_mode()
    def mask(self, heads: TrackHeads, pos_yx: np.ndarray) -> np.ndarray:
        pos = torch.as_tensor(np.asarray(pos_yx, np.int64), device=self.device)
        with self._autocast():
            logits = self._mask_logits(heads.context, pos)
        return logits.float().cpu().numpy()


def _check_compiler(device: torch.device) -> None:
    """Inductor builds C++ for the CPU; without a compiler it fails deep inside the first call."""
    import torch._inductor.config as inductor
    wanted = [c for c in inductor.cpp.cxx if c] + ([os.environ["CXX"]] if os.environ.get("CXX") else [])
    if device.type == "cpu" and not any(shutil.which(c) for c in wanted):
        raise UserError(f"--engine torch-compile needs a C++ compiler ({' or '.join(wanted)}) to build for the "
                        "CPU; install one (e.g. apt install g++) or use --engine torch")
