"""PyTorch back end (CPU; CUDA where available)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from siammask.errors import UserError
from siammask.model import SiamMask, TemplateFeatures

from .base import TrackHeads


class TorchEngine:
    """Runs a SiamMask module in inference mode; template features stay on the device.

    Weights and inputs are channels-last: oneDNN's convolutions run about 15% faster that way
    on this CPU (benchmarks/RESULTS.md) with the same float32 arithmetic."""

    name = "torch"

    def __init__(self, model: SiamMask, device: str = "cpu") -> None:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("--device cuda asked for, but this PyTorch has no CUDA device; use --device cpu")
        self.device = torch.device(device)
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        self.variant = model.variant
        self.mask_size = model.mask_size

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)
        return t.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def template(self, z: np.ndarray) -> TemplateFeatures:
        return self.model.template(self._tensor(z))

    def concat(self, parts: Sequence[TemplateFeatures]) -> TemplateFeatures:
        return parts[0] if len(parts) == 1 else TemplateFeatures.cat(list(parts))

    @torch.inference_mode()
    def track(self, x: np.ndarray, features: TemplateFeatures) -> TrackHeads:
        out = self.model.track(self._tensor(x), features)
        return TrackHeads(out.cls.float().cpu().numpy(), out.loc.float().cpu().numpy(), out)

    @torch.inference_mode()
    def mask(self, heads: TrackHeads, pos_yx: np.ndarray) -> np.ndarray:
        pos = torch.as_tensor(np.asarray(pos_yx, np.int64), device=self.device)
        return self.model.mask_logits(heads.context, pos).float().cpu().numpy()
