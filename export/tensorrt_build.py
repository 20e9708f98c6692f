"""ONNX graphs -> TensorRT engines with the TensorRT 10 Python API (NVIDIA GPU machines only).

Not run in this project's CI (no GPU, TensorRT not installable): written against the documented
TensorRT 10 API (Builder, OnnxParser, optimisation profile on the batch axis, precision flags)."""
from __future__ import annotations

from pathlib import Path

from siammask.engines.tensorrt_engine import require_tensorrt
from siammask.errors import UserError
from siammask.model import TrackingNet

from .onnx_export import FILES, graphs_of, random_feeds
from .trt_ops import check_tensorrt_compatible
from .verify import TOLERANCES, check_outputs

ENGINE_FILES = {role: name.replace(".onnx", ".plan") for role, name in FILES.items()}
WORKSPACE_BYTES = 2 << 30


def build_engine_file(onnx_path: Path, plan_path: Path, precision: str, max_batch: int) -> Path:
    """Parse one ONNX graph and build a serialized engine for batch 1..max_batch (optimised for 1).

    fp32 clears TF32 so that fp32 means fp32; fp16 lets TensorRT pick half-precision kernels; int8
    expects a QDQ graph (explicit quantization: the scales come from the graph, no calibrator)."""
    trt = require_tensorrt()
    check_tensorrt_compatible(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT cannot parse '{onnx_path.name}': {errors[:300]}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # int8: layers without Q/DQ may still use half precision
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *rest), (1, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError(f"TensorRT could not build an engine from '{onnx_path.name}' (see its log above)")
    plan_path.write_bytes(bytes(serialized))
    return plan_path


def build_engines(model: TrackingNet, folder: Path, precision: str, max_batch: int
                  ) -> tuple[dict[str, str], dict[str, dict[str, float]]]:
    """Build the three engines next to their ONNX graphs in `folder` and check each against ONNX
    Runtime on the same graph and fresh random inputs (batch 2). Returns (role -> file, errors)."""
    import torch

    from siammask.engines.onnx_session import open_session
    from siammask.engines.tensorrt_engine import TrtGraph

    trt = require_tensorrt()
    feeds = random_feeds(model, batch=2, seed=2)
    errors = {}
    for role, graph in graphs_of(model).items():
        plan = build_engine_file(folder / FILES[role], folder / ENGINE_FILES[role], precision, max_batch)
        numpy_feeds = {name: t.numpy() for name, t in feeds[role].items()}
        ref = dict(zip(graph.outputs, open_session(folder / FILES[role], ["CPUExecutionProvider"])
                       .run(list(graph.outputs), numpy_feeds)))
        runner = TrtGraph(trt, plan, torch.device("cuda"))
        got = {name: t.float().cpu().numpy() for name, t in runner(feeds[role]).items()}
        errors[role] = check_outputs(f"TensorRT '{plan.name}'", got, ref, TOLERANCES[precision])
    return dict(ENGINE_FILES), errors
