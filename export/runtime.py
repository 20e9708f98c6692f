"""Any back end from a loaded model or an export directory: a graph back end (onnxruntime,
tensorrt) given a loaded model gets a verified export first (ONNX exports are kept in the export
cache, export/cache.py; TensorRT engines, tied to one GPU, go to a temporary directory).

`auto` picks for the user: on a CPU in float32 the back end the variant was measured fastest with
(VariantSpec.cpu_engine: onnxruntime for nano, torch for the ResNet-style models), torch
otherwise; an export directory runs on the back end it was exported for."""
from __future__ import annotations

import importlib.util
import logging
import tempfile
from pathlib import Path

from siammask.backend import Engine
from siammask.engines import registry
from siammask.engines.registry import ModelSource
from siammask.engines.sidecar import read_sidecar
from siammask.errors import UserError
from siammask.variants import variant_spec

log = logging.getLogger(__name__)

AUTO = "auto"
ENGINE_CHOICES = (AUTO, *registry.ENGINES)
# graph back end -> the export format it runs
GRAPH_FORMATS = {"onnxruntime": "onnx", "tensorrt": "tensorrt"}
# export directory back end (sidecar) -> the engine that runs it
EXPORT_ENGINES = {fmt: engine for engine, fmt in GRAPH_FORMATS.items()}


def resolve_engine(name: str, source: ModelSource, device: str = "cpu", precision: str | None = None) -> str:
    """The back end `name` means here: itself, or for `auto` the one chosen for this model and device."""
    if name not in ENGINE_CHOICES:
        raise UserError(f"unknown engine '{name}'; available: {', '.join(ENGINE_CHOICES)}")
    if name != AUTO:
        return name
    if isinstance(source, Path):
        # an unknown back end goes to onnxruntime, whose own sidecar check refuses it in one line
        return EXPORT_ENGINES.get(read_sidecar(source, check_files=False).backend, "onnxruntime")
    if precision == "int8":
        return "onnxruntime"
    preferred = variant_spec(source.variant).cpu_engine
    if device != "cpu" or precision not in (None, "fp32") or preferred == "torch":
        return "torch"
    if importlib.util.find_spec(preferred) is None:
        log.info("%s is not installed; --engine auto runs torch", preferred)
        return "torch"
    return preferred


def build_engine(name: str, source: ModelSource, device: str = "cpu", precision: str | None = None) -> Engine:
    """siammask.engines.registry.build_engine, plus `auto` and graph back ends on a loaded model."""
    name = resolve_engine(name, source, device, precision)
    if isinstance(source, Path) or name not in GRAPH_FORMATS:
        return registry.build_engine(name, source, device, precision)
    # A loaded model: torch is there, and so is what exports it (an export directory alone needs neither).
    from .cache import cached_export
    from .exporter import export_model
    from .onnx_export import OPSET

    if name == "tensorrt":
        from siammask.engines.tensorrt_engine import tensorrt_for
        tensorrt_for(device)  # before minutes of export and engine building
    fmt, graph_precision = GRAPH_FORMATS[name], precision or "fp32"

    def export(folder: Path) -> None:
        export_model(source, folder, fmt=fmt, precision=graph_precision)

    cached = cached_export(source, graph_precision, OPSET, export) if fmt == "onnx" else None
    if cached is not None:
        return registry.build_engine(name, cached, device, precision)
    # Sessions hold their graphs in memory, so the temporary directory can go at once.
    with tempfile.TemporaryDirectory(prefix=f"siammask-{name}-") as folder:
        export(Path(folder))
        return registry.build_engine(name, Path(folder), device, precision)
