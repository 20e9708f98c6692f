"""Any back end from a loaded model or an export directory: a graph back end (onnxruntime,
tensorrt) given a loaded model gets a verified export in a temporary directory first."""
from __future__ import annotations

import tempfile
from pathlib import Path

from siammask.backend import Engine
from siammask.engines import registry
from siammask.engines.registry import ModelSource
from siammask.model import TrackingNet

from .exporter import export_model

# graph back end -> the export format it runs
GRAPH_FORMATS = {"onnxruntime": "onnx", "tensorrt": "tensorrt"}


def build_engine(name: str, source: ModelSource, device: str = "cpu", precision: str | None = None) -> Engine:
    """siammask.engines.registry.build_engine, plus graph back ends on a loaded model. Their sessions
    hold the graphs in memory, so the temporary directory is removed at once."""
    if not isinstance(source, TrackingNet) or name not in GRAPH_FORMATS:
        return registry.build_engine(name, source, device, precision)
    if name == "tensorrt":
        from siammask.engines.tensorrt_engine import tensorrt_for
        tensorrt_for(device)  # before minutes of export and engine building
    with tempfile.TemporaryDirectory(prefix=f"siammask-{name}-") as folder:
        export_model(source, Path(folder), fmt=GRAPH_FORMATS[name], precision=precision or "fp32")
        return registry.build_engine(name, Path(folder), device, precision)
