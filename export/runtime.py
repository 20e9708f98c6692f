"""Export on the fly: the directory a graph back end (onnxruntime, tensorrt) runs a loaded model
from, made and verified here. ONNX exports are kept in the export cache (export/cache.py);
TensorRT engines, tied to one GPU, go to a temporary directory. Handed to
siammask.engines.registry.build_engine, which decides when an export is needed."""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from siammask.engines.registry import GRAPH_FORMATS

if TYPE_CHECKING:  # a loaded model exists only where torch is installed
    from siammask.model import TrackingNet


@contextmanager
def exported_graphs(model: "TrackingNet", engine: str, device: str, precision: str | None) -> Iterator[Path]:
    """A verified export of `model` for the graph back end `engine`: the cached ONNX export, else a
    temporary directory removed when the context ends."""
    from .cache import cached_export
    from .exporter import export_model
    from .onnx_export import OPSET

    if engine == "tensorrt":
        from siammask.engines.tensorrt_engine import tensorrt_for
        tensorrt_for(device)  # before minutes of export and engine building
    fmt, graph_precision = GRAPH_FORMATS[engine], precision or "fp32"

    def export(folder: Path) -> None:
        export_model(model, folder, fmt=fmt, precision=graph_precision)

    cached = cached_export(model, graph_precision, OPSET, export) if fmt == "onnx" else None
    if cached is not None:
        yield cached
        return
    with tempfile.TemporaryDirectory(prefix=f"siammask-{engine}-") as folder:
        export(Path(folder))
        yield Path(folder)
