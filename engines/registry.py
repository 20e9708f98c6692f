"""The one place that maps an engine name to its back end (no if/elif chains elsewhere).

Every factory takes what the user gave: a loaded model (torch back ends) or an export directory
made by `siammask export` (a Path; graph back ends), plus the device and precision (None: the back
end's default, or what the export directory holds). Running a graph back end straight from a
loaded model needs an export first: siammask.export.runtime.build_engine does that."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Union

from siammask.backend import Engine
from siammask.errors import UserError

if TYPE_CHECKING:  # a loaded model exists only where torch is installed; this module must not need it
    from siammask.model import TrackingNet

ModelSource = Union["TrackingNet", Path]


def _torch(source: ModelSource, device: str, precision: str | None, compile: bool = False) -> Engine:
    from .torch_engine import TorchEngine
    if isinstance(source, Path):
        name = "torch-compile" if compile else "torch"
        raise UserError(f"the {name} engine loads a .pth checkpoint, not the export directory '{source}'; "
                        "use --engine onnxruntime or tensorrt for export directories")
    return TorchEngine(source, device, precision or "fp32", compile=compile)


def _torch_compile(source: ModelSource, device: str, precision: str | None) -> Engine:
    return _torch(source, device, precision, compile=True)


def _export_dir(name: str, source: ModelSource) -> Path:
    if not isinstance(source, Path):
        raise UserError(f"the {name} engine runs an export directory, not a loaded model; export the model "
                        "first (siammask.export.runtime.build_engine does it on the fly)")
    return source


def _onnxruntime(source: ModelSource, device: str, precision: str | None) -> Engine:
    from .onnxruntime_engine import OnnxRuntimeEngine
    return OnnxRuntimeEngine(_export_dir("onnxruntime", source), device, precision)


def _tensorrt(source: ModelSource, device: str, precision: str | None) -> Engine:
    from .tensorrt_engine import TensorRTEngine
    return TensorRTEngine(_export_dir("tensorrt", source), device, precision)


ENGINES: dict[str, Callable[[ModelSource, str, str | None], Engine]] = {
    "torch": _torch, "torch-compile": _torch_compile, "onnxruntime": _onnxruntime, "tensorrt": _tensorrt}


def build_engine(name: str, source: ModelSource, device: str = "cpu", precision: str | None = None) -> Engine:
    """Wrap a loaded model (or an export directory) in the named back end."""
    if name not in ENGINES:
        raise UserError(f"unknown engine '{name}'; available: {', '.join(sorted(ENGINES))}")
    return ENGINES[name](source, device, precision)
