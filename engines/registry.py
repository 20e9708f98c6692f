"""The one place that maps an engine name to its back end (no if/elif chains elsewhere).

Every factory takes what the user gave: a loaded model, or an export directory made by
`siammask export` (a Path), plus the device and precision (None: the back end's default, or
what the export directory holds)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from siammask.errors import UserError
from siammask.model import TrackingNet

from .base import Engine

ModelSource = TrackingNet | Path


def _torch(source: ModelSource, device: str, precision: str | None, compile: bool = False) -> Engine:
    from .torch_engine import TorchEngine
    if not isinstance(source, TrackingNet):
        name = "torch-compile" if compile else "torch"
        raise UserError(f"the {name} engine loads a .pth checkpoint, not the export directory '{source}'; "
                        "use --engine onnxruntime or tensorrt for export directories")
    return TorchEngine(source, device, precision or "fp32", compile=compile)


def _torch_compile(source: ModelSource, device: str, precision: str | None) -> Engine:
    return _torch(source, device, precision, compile=True)


def _onnxruntime(source: ModelSource, device: str, precision: str | None) -> Engine:
    from .onnxruntime_engine import OnnxRuntimeEngine
    if isinstance(source, TrackingNet):
        return OnnxRuntimeEngine.from_model(source, device, precision)
    return OnnxRuntimeEngine(source, device, precision)


def _tensorrt(source: ModelSource, device: str, precision: str | None) -> Engine:
    from .tensorrt_engine import TensorRTEngine
    if isinstance(source, TrackingNet):
        return TensorRTEngine.from_model(source, device, precision)
    return TensorRTEngine(source, device, precision)


ENGINES: dict[str, Callable[[ModelSource, str, str | None], Engine]] = {
    "torch": _torch, "torch-compile": _torch_compile, "onnxruntime": _onnxruntime, "tensorrt": _tensorrt}


def build_engine(name: str, source: ModelSource, device: str = "cpu", precision: str | None = None) -> Engine:
    """Wrap a loaded model (or an export directory) in the named back end."""
    if name not in ENGINES:
        raise UserError(f"unknown engine '{name}'; available: {', '.join(sorted(ENGINES))}")
    return ENGINES[name](source, device, precision)
