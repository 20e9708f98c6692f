"""The one place that maps an engine name (the names: engines/names.py, free of numpy for the
command line and serve's config) to its back end (no if/elif chains elsewhere), and the
one `build_engine` every caller uses (the commands and the serving pipeline through
siammask.api.load_tracker, `siammask bench`).

Every factory takes what the user gave: a loaded model (torch back ends) or an export directory
made by `siammask export` (a Path; graph back ends), plus the device and precision (None: the back
end's default, or what the export directory holds).

`auto` picks for the user: on a CPU in float32 the back end the variant was measured fastest with
(VariantSpec.cpu_engine: onnxruntime for nano, torch for the ResNet-style models), torch
otherwise; an export directory runs on the back end it was exported for. A graph back end given a
loaded model runs on an export made on the fly: how to export belongs to the export layer above,
so the caller hands build_engine that step (siammask.export.runtime.exported_graphs)."""
from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Union

from siammask.backend import Engine
from siammask.errors import UserError
from siammask.variants import variant_spec

from .names import AUTO, check_engine
from .sidecar import read_sidecar

if TYPE_CHECKING:  # a loaded model exists only where torch is installed; this module must not need it
    from siammask.model import TrackingNet

ModelSource = Union["TrackingNet", Path]
# (loaded model, graph back end, device, precision) -> a context holding the export directory
Exporter = Callable[["TrackingNet", str, str, Union[str, None]], AbstractContextManager[Path]]

log = logging.getLogger(__name__)


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
                        "first (siammask export), or load it with siammask.load_tracker, which exports on the fly")
    return source


def _onnxruntime(source: ModelSource, device: str, precision: str | None) -> Engine:
    from .onnxruntime_engine import OnnxRuntimeEngine
    return OnnxRuntimeEngine(_export_dir("onnxruntime", source), device, precision)


def _tensorrt(source: ModelSource, device: str, precision: str | None) -> Engine:
    from .tensorrt_engine import TensorRTEngine
    return TensorRTEngine(_export_dir("tensorrt", source), device, precision)


# one factory per name of names.BACKENDS (tests/test_engine_auto.py checks that they match)
ENGINES: dict[str, Callable[[ModelSource, str, str | None], Engine]] = {
    "torch": _torch, "torch-compile": _torch_compile, "onnxruntime": _onnxruntime, "tensorrt": _tensorrt}
# graph back end -> the export format it runs
GRAPH_FORMATS = {"onnxruntime": "onnx", "tensorrt": "tensorrt"}
# export directory back end (sidecar) -> the engine that runs it
EXPORT_ENGINES = {fmt: engine for engine, fmt in GRAPH_FORMATS.items()}


def auto_engine(variant: str, device: str = "cpu", precision: str | None = None) -> str:
    """The back end `auto` runs a loaded model of `variant` on (the rule in the module docstring)."""
    if precision == "int8":
        return "onnxruntime"
    preferred = variant_spec(variant).cpu_engine
    if device != "cpu" or precision not in (None, "fp32") or preferred == "torch":
        return "torch"
    if importlib.util.find_spec(preferred) is None:
        log.info("%s is not installed; --engine auto runs torch", preferred)
        return "torch"
    return preferred


def resolve_engine(name: str, source: ModelSource, device: str = "cpu", precision: str | None = None) -> str:
    """The back end `name` means here: itself, or for `auto` the one chosen for this model and device."""
    if check_engine(name) != AUTO:
        return name
    if isinstance(source, Path):
        # an unknown back end goes to onnxruntime, whose own sidecar check refuses it in one line
        return EXPORT_ENGINES.get(read_sidecar(source, check_files=False).backend, "onnxruntime")
    return auto_engine(source.variant, device, precision)


def build_engine(name: str, source: ModelSource, device: str = "cpu", precision: str | None = None,
                 export: Exporter | None = None) -> Engine:
    """`name` (auto included) on a loaded model or an export directory. A graph back end on a loaded
    model runs on `export`'s directory (ONNX Runtime holds its graphs in memory, so a temporary one
    may go as soon as the engine is built); without `export` that is refused in one line."""
    name = resolve_engine(name, source, device, precision)
    if isinstance(source, Path) or name not in GRAPH_FORMATS or export is None:
        return ENGINES[name](source, device, precision)
    with export(source, name, device, precision) as folder:
        return ENGINES[name](folder, device, precision)
