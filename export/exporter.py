"""`export_model`: a loaded SiamMask -> a verified export directory (ONNX or TensorRT) with a sidecar."""
from __future__ import annotations

import copy
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from siammask.config import load_hp
from siammask.engines.sidecar import ONE_CROP, SIDECAR, ExportInfo, write_sidecar
from siammask.errors import UserError
from siammask.model import TrackingNet, variant_spec

from .onnx_export import FILES, INPUT_SIZES, OPSET, export_fp32, graphs_of, random_feeds
from .verify import TOLERANCES, check_outputs, torch_outputs, verify_onnx

FORMATS = ("onnx", "tensorrt")
EXPORT_PRECISIONS = ("fp32", "fp16", "int8")
Calibration = tuple[Sequence[np.ndarray], Sequence[float]]  # frames, first box (x, y, w, h)


def export_model(model: TrackingNet, out: Path, *, fmt: str = "onnx", precision: str = "fp32",
                 hp: str | None = None, opset: int | None = None, calibration: Calibration | None = None,
                 max_batch: int = 8) -> ExportInfo:
    """Export, verify every graph against PyTorch (UserError beyond tolerance) and write the sidecar.

    fp16 ONNX graphs are converted from float32 ones (inputs and outputs stay float32); int8 graphs
    are quantized with crops the tracker cut from `calibration` (synthetic frames when None).
    TensorRT engines are built from float32 graphs (fp16 by builder flag) or the int8 QDQ graphs."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    if precision not in EXPORT_PRECISIONS:
        raise UserError(f"precision '{precision}' cannot be exported; choose one of {', '.join(EXPORT_PRECISIONS)} "
                        "(bf16 is a torch-engine option on CPU)")
    if fmt == "tensorrt":
        from siammask.engines.tensorrt_engine import require_tensorrt
        require_tensorrt()
    out.mkdir(parents=True, exist_ok=True)
    (out / SIDECAR).unlink(missing_ok=True)  # a failed export must not leave a directory that looks valid
    hp, opset = hp or variant_spec(model.variant).default_hp, opset or OPSET
    model = _on_cpu(model).eval()
    graph_precision = precision if fmt == "onnx" or precision == "int8" else "fp32"
    info = ExportInfo(backend="onnx", variant=model.variant, hp=hp, precision="fp32", opset=opset,
                      input_sizes=INPUT_SIZES, files=dict(FILES))
    with tempfile.TemporaryDirectory(prefix="siammask-export-") as tmp:
        work = out if graph_precision == "fp32" else Path(tmp)
        # ONNX Runtime in fp32 or fp16 also gets nano's one-crop search graph (int8 and TensorRT do not)
        one_crop = fmt == "onnx" and graph_precision != "int8"
        fp32 = export_fp32(model, work, opset, one_crop)
        _record(info, "fp32", "fp32", _verify_random(model, fp32, "fp32"))
        if one_crop:
            info.files = {role: path.name for role, path in fp32.items()}
        if graph_precision == "fp16":
            _to_fp16(fp32, out)
            _record(info, "fp16", "fp16", _verify_random(model, {r: out / p.name for r, p in fp32.items()}, "fp16"))
        elif graph_precision == "int8":
            write_sidecar(work, info)
            _record(info, "int8", "int8", _quantize(model, work, out, hp, calibration, symmetric=fmt == "tensorrt"))
    info.precision = graph_precision
    if fmt == "tensorrt":
        from .tensorrt_build import build_engines
        info.onnx = dict(FILES)
        info.files, errors = build_engines(model, out, precision, max_batch)
        info.backend, info.precision = "tensorrt", precision
        _record(info, f"tensorrt-{precision}", precision, errors)
    write_sidecar(out, info)
    return info


def _on_cpu(model: TrackingNet) -> TrackingNet:
    """The model itself when it is on the CPU, else a CPU copy (an engine may hold it on a GPU)."""
    return model if next(model.parameters()).device.type == "cpu" else copy.deepcopy(model).cpu()


def _record(info: ExportInfo, check: str, precision: str, errors: dict[str, dict[str, float]]) -> None:
    """Keep a passed check in the sidecar: its tolerance and every output's relative error."""
    info.verification[check] = {"tolerance": TOLERANCES[precision], "max_rel_error": errors}


def _verify_random(model: TrackingNet, paths: dict[str, Path], precision: str) -> dict[str, dict[str, float]]:
    """Each graph against the model on fresh random inputs (batch 2; one crop for the one-crop graph),
    at the precision's tolerance."""
    feeds = random_feeds(model, batch=2, seed=1)
    return {role: verify_onnx(paths[role], g.module, feeds[role], g.outputs, TOLERANCES[precision])
            for role, g in graphs_of(model, ONE_CROP in paths).items()}


def _to_fp16(fp32: dict[str, Path], out: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    for src in fp32.values():
        onnx.save(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), str(out / src.name))


def _quantize(model: TrackingNet, fp32_dir: Path, out: Path, hp: str, calibration: Calibration | None,
              symmetric: bool) -> dict[str, dict[str, float]]:
    """Calibrate on the tracker's real inputs, quantize each graph, and check it against PyTorch on the
    last recorded input of each graph, which calibration did not see."""
    from siammask.engines.onnx_session import open_session
    from siammask.engines.onnxruntime_engine import OnnxRuntimeEngine

    from .calibration import collect_feeds, synthetic_clip
    from .quantize import quantize_graph

    frames, box = calibration if calibration is not None else synthetic_clip()
    feeds = collect_feeds(OnnxRuntimeEngine(fp32_dir), load_hp(hp), frames, box)
    errors = {}
    for role, graph in graphs_of(model).items():
        mine = [{name: f[name] for name in graph.inputs} for f in feeds[role]]
        if len(mine) < 2:
            raise UserError(f"calibration gave {len(mine)} {role} inputs; give at least 3 frames")
        dst = quantize_graph(fp32_dir / FILES[role], out / FILES[role], mine[:-1], symmetric,
                             variant_spec(model.variant).float32_stages)
        held_out = mine[-1]
        got = dict(zip(graph.outputs, open_session(dst, ["CPUExecutionProvider"]).run(list(graph.outputs), held_out)))
        ref = torch_outputs(graph.module, {k: torch.from_numpy(v) for k, v in held_out.items()}, graph.outputs)
        errors[role] = check_outputs(f"int8 '{dst.name}'", got, ref, TOLERANCES["int8"])
    return errors
