"""TensorRT back end on the engines of a `siammask export --format tensorrt` directory (NVIDIA GPUs).

Buffers are PyTorch CUDA tensors (no pycuda needed); template kernels and trunk maps stay on the
GPU between calls. Not run in this project's CI (no GPU): written against the TensorRT 10 API
(deserialize_cuda_engine, named I/O tensors, set_input_shape, set_tensor_address, execute_async_v3)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from siammask.backend import TemplateFeatures, TrackHeads
from siammask.errors import UserError

from .graph_io import mask_io, mask_size
from .sidecar import read_sidecar


def _torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
             trt.DataType.INT32: torch.int32, trt.DataType.INT64: torch.int64,
             trt.DataType.INT8: torch.int8, trt.DataType.BOOL: torch.bool}
    return table[dtype]


def require_tensorrt():
    """The tensorrt module, or a one-line UserError saying how to get it."""
    try:
        import tensorrt
    except ImportError:
        raise UserError("tensorrt is not installed; install TensorRT 10 (pip install tensorrt) on a machine "
                        "with an NVIDIA GPU") from None
    if int(tensorrt.__version__.split(".")[0]) < 10:
        raise UserError(f"TensorRT {tensorrt.__version__} found; this siammask needs TensorRT 10 or newer")
    return tensorrt


def tensorrt_for(device: str):
    """The tensorrt module, once it is known to be installed and `device` is a CUDA device."""
    trt = require_tensorrt()
    if not device.startswith("cuda") or not torch.cuda.is_available():
        raise UserError("the tensorrt engine runs on an NVIDIA GPU: use --device cuda on a machine with CUDA")
    return trt


class TrtGraph:
    """One deserialized engine and its execution context, called with named tensors."""

    def __init__(self, trt, plan: Path, device: torch.device) -> None:
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise UserError(f"'{plan}' is not a TensorRT engine this TensorRT {trt.__version__} and GPU can load "
                            "(corrupt, or built elsewhere); rebuild it with siammask export --format tensorrt")
        self.context = self.engine.create_execution_context()
        self.device = device
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}

    def __call__(self, feeds: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        stream = torch.cuda.current_stream(self.device)
        kept = []  # inputs must outlive the asynchronous launch
        for name in self.inputs:
            t = feeds[name].to(self.device, self.dtypes[name]).contiguous()
            kept.append(t)
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
        outputs = {}
        for name in self.outputs:
            outputs[name] = torch.empty(tuple(self.context.get_tensor_shape(name)), dtype=self.dtypes[name],
                                        device=self.device)
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        return outputs


class TensorRTEngine:
    """Runs template.plan, search.plan and mask.plan of an export directory on one GPU."""

    name = "tensorrt"

    def __init__(self, export_dir: str | Path, device: str = "cuda", precision: str | None = None,
                 variant: str | None = None) -> None:
        trt = tensorrt_for(device)
        folder = Path(export_dir)
        info = read_sidecar(folder, backend="tensorrt")
        if variant is not None and info.variant != variant:
            raise UserError(f"'{folder}' holds {info.variant} engines but the {variant} variant was asked for")
        if precision is not None and info.precision != precision:
            raise UserError(f"'{folder}' holds {info.precision} engines but --precision {precision} was asked for")
        self.device = torch.device(device)
        self.variant, self.precision = info.variant, info.precision
        self.mask_size = mask_size(self.variant)
        self.graphs = {role: TrtGraph(trt, folder / file, self.device) for role, file in info.files.items()}
        expected = set(mask_io(self.variant)[0])
        if set(self.graphs["mask"].inputs) != expected:
            raise UserError(f"'{folder / info.files['mask']}' takes {sorted(self.graphs['mask'].inputs)}, "
                            f"expected {sorted(expected)}: not a {self.variant} engine; rebuild it")

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, np.float32)).to(self.device)

    def template(self, z: np.ndarray) -> TemplateFeatures:
        out = self.graphs["template"]({"z": self._tensor(z)})
        return TemplateFeatures(out["k_cls"], out["k_loc"], out["k_mask"])

    def concat(self, parts: Sequence[TemplateFeatures]) -> TemplateFeatures:
        return TemplateFeatures.cat(parts)

    def appearance(self, features: TemplateFeatures) -> np.ndarray:
        return features.appearance()

    def track(self, x: np.ndarray, features: TemplateFeatures) -> TrackHeads:
        out = self.graphs["search"]({"x": self._tensor(x), "k_cls": features.cls, "k_loc": features.loc,
                                     "k_mask": features.mask})
        return TrackHeads(out["cls"].float().cpu().numpy(), out["loc"].float().cpu().numpy(), out)

    def mask(self, heads: TrackHeads, pos_yx: np.ndarray) -> np.ndarray:
        feeds = dict(heads.context, pos_yx=torch.as_tensor(np.asarray(pos_yx, np.int64)))
        return self.graphs["mask"](feeds)["mask"].float().cpu().numpy()
