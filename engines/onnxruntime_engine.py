"""ONNX Runtime back end on the three exported graphs (CPU; CUDA / TensorRT providers where installed)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from siammask.backend import TemplateFeatures, TrackHeads
from siammask.errors import UserError
from siammask.threads import inference_threads

from .graph_io import TEMPLATE_IO, mask_io, mask_size, search_io
from .onnx_session import Sessions, open_session
from .sidecar import ONE_CROP, read_sidecar


def providers_for(device: str) -> list:
    """Execution providers for --device: CPU, or TensorRT/CUDA (falling back to CPU per node)."""
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if not device.startswith("cuda"):
        raise UserError(f"unknown device '{device}'; use cpu or cuda")
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise UserError("--device cuda asked for, but this onnxruntime has no CUDA provider "
                        "(pip install onnxruntime-gpu on a machine with an NVIDIA GPU); use --device cpu")
    options = {"device_id": int(device.partition(":")[2] or 0)}
    gpu = [("CUDAExecutionProvider", options)]
    if "TensorrtExecutionProvider" in available:
        gpu.insert(0, ("TensorrtExecutionProvider", options))
    return [*gpu, "CPUExecutionProvider"]


class OnnxRuntimeEngine:
    """Runs template.onnx, search.onnx and mask.onnx of an export directory (see `siammask export`)."""

    name = "onnxruntime"

    def __init__(self, export_dir: str | Path, device: str = "cpu", precision: str | None = None,
                 variant: str | None = None) -> None:
        folder = Path(export_dir)
        info = read_sidecar(folder, backend="onnx")
        if variant is not None and info.variant != variant:
            raise UserError(f"'{folder}' holds {info.variant} graphs but the {variant} variant was asked for; "
                            f"use --variant {info.variant} or export the {variant} model")
        if precision is not None and info.precision != precision:
            raise UserError(f"'{folder}' holds {info.precision} graphs but --precision {precision} was asked for; "
                            f"re-export with --precision {precision}")
        self.folder = folder  # the export it runs
        self.variant, self.precision = info.variant, info.precision
        self.mask_size = mask_size(self.variant)
        providers = providers_for(device)
        # One thread setting for every back end (siammask.threads); left alone, ONNX Runtime's pool
        # would take every core in each worker process.
        threads = inference_threads()
        search = search_io(self.variant)
        expected = {"template": TEMPLATE_IO, "search": search, ONE_CROP: search, "mask": mask_io(self.variant)}

        # With a one-crop graph the batched one serves only batches (several targets, a lost target's
        # windows): opened when the first comes. The files were all checked against the sidecar above;
        # a later graph is read now (2 MB for nano), as checked: the folder may be a temporary export
        # that is gone by then, or a file changed since.
        later = ["search"] if ONE_CROP in info.files else []
        kept = {role: (folder / info.files[role]).read_bytes() for role in later}

        def opened(role: str):
            name = info.files[role]
            session = open_session(folder / name, providers, threads, kept.pop(role, None), info.sha256.get(name))
            _check_io(session, folder / name, *expected[role])
            return session

        self.sessions = Sessions(list(info.files), opened, later=later)
        self._mask_inputs = mask_io(self.variant)[0]
        self._context = search[1][2:]  # what the search graph gives the mask graph besides the heads

    def template(self, z: np.ndarray) -> TemplateFeatures:
        return TemplateFeatures(*self.sessions["template"].run(None, {"z": np.ascontiguousarray(z, np.float32)}))

    def concat(self, parts: Sequence[TemplateFeatures]) -> TemplateFeatures:
        return TemplateFeatures.cat(parts)

    def appearance(self, features: TemplateFeatures) -> np.ndarray:
        return features.appearance()

    def track(self, x: np.ndarray, features: TemplateFeatures) -> TrackHeads:
        # one crop: the graph traced for one where the export has it (nano: its correlations as
        # grouped convolutions, cheaper than the batched graph's), else the batched graph
        session = self.sessions.get(ONE_CROP) if len(x) == 1 else None
        cls, loc, *context = (session or self.sessions["search"]).run(None, {
            "x": np.ascontiguousarray(x, np.float32), "k_cls": features.cls, "k_loc": features.loc,
            "k_mask": features.mask})
        return TrackHeads(cls, loc, dict(zip(self._context, context)))

    def mask(self, heads: TrackHeads, pos_yx: np.ndarray) -> np.ndarray:
        feeds = {name: heads.context[name] for name in self._mask_inputs if name != "pos_yx"}
        feeds["pos_yx"] = np.asarray(pos_yx, np.int64).reshape(-1, 2)
        return self.sessions["mask"].run(None, feeds)[0]


def _check_io(session, path: Path, inputs: Sequence[str], outputs: Sequence[str]) -> None:
    """The graph must have exactly the names the engine binds (a graph of the other variant does not)."""
    got_in = tuple(i.name for i in session.get_inputs())
    got_out = tuple(o.name for o in session.get_outputs())
    if got_in != tuple(inputs) or got_out != tuple(outputs):
        raise UserError(f"'{path}' has inputs {list(got_in)} and outputs {list(got_out)}, expected "
                        f"{list(inputs)} -> {list(outputs)}: not a graph of this export (other variant?); re-export")
