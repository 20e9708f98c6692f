"""Trace the three graphs of a SiamMask model to ONNX (float32, dynamic batch axis)."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from siammask.engines.graph_io import TEMPLATE_IO, mask_io, search_io
from siammask.engines.sidecar import ONE_CROP
from siammask.model import TrackingNet

from .graphs import TemplateGraph, mask_graph, one_crop_search_graph, search_graph
from .onnx_io import check_graph

OPSET = 17
FILES = {"template": "template.onnx", "search": "search.onnx", "mask": "mask.onnx"}
# every graph's file: the three every export has, and nano's one-crop search graph of ONNX exports
GRAPH_FILES = {**FILES, ONE_CROP: "search_one.onnx"}
INPUT_SIZES = {"template": [3, 127, 127], "search": [3, 255, 255]}


@dataclass
class Graph:
    """One exportable graph: the module and its input/output names (the engines bind by name)."""

    module: nn.Module
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: bool = True  # a dynamic batch axis; False: traced for one crop (ONE_CROP)


def graphs_of(model: TrackingNet, one_crop: bool = False) -> dict[str, Graph]:
    """template, search and mask graphs over the model's own layers, in eval mode (tracing a module
    in training mode would update BatchNorm statistics); with `one_crop`, also the variant's search
    graph for one crop where it has one (nano)."""
    pairs = {"template": (TemplateGraph(model), TEMPLATE_IO), "search": (search_graph(model), search_io(model.variant)),
             "mask": (mask_graph(model), mask_io(model.variant))}
    graphs = {role: Graph(module.eval(), *io) for role, (module, io) in pairs.items()}
    single = one_crop_search_graph(model) if one_crop else None
    if single is not None:
        graphs[ONE_CROP] = Graph(single.eval(), *search_io(model.variant), dynamic=False)
    return graphs


@torch.no_grad()
def random_feeds(model: TrackingNet, batch: int, seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """Fresh inputs for each graph: random pixels for the crops, and for the later graphs what
    the model itself makes of them (kernels, trunk maps), with random grid positions."""
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(batch, 3, *INPUT_SIZES["template"][1:], generator=g) * 255
    x = torch.rand(batch, 3, *INPUT_SIZES["search"][1:], generator=g) * 255
    t = model.template(z)
    out = model.track(x, t)
    pos = torch.randint(0, out.cls.shape[-1], (batch, 2), generator=g)
    maps = {"p0": out.p0, "p1": out.p1, "p2": out.p2, "mask_corr": out.mask_corr, "pos_yx": pos}
    search = {"x": x, "k_cls": t.cls, "k_loc": t.loc, "k_mask": t.mask}
    return {"template": {"z": z}, "search": search, ONE_CROP: {name: value[:1] for name, value in search.items()},
            "mask": {name: maps[name] for name in mask_io(model.variant)[0]}}


def export_graph(graph: Graph, feeds: dict[str, torch.Tensor], path: Path, opset: int = OPSET) -> Path:
    """One torch.onnx.export call, with a dynamic batch axis on every input and output unless the
    graph is traced for one crop."""
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of torch.export (which needs onnxscript);
        # its trace warnings are about the fixed kernel and map sizes, which are fixed by design.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.onnx")
        torch.onnx.export(graph.module, tuple(feeds.values()), str(path), dynamo=False, opset_version=opset,
                          input_names=list(graph.inputs), output_names=list(graph.outputs),
                          dynamic_axes={name: {0: "batch"} for name in graph.inputs + graph.outputs}
                          if graph.dynamic else None)
    check_graph(path)
    return path


def export_fp32(model: TrackingNet, folder: Path, opset: int = OPSET, one_crop: bool = False) -> dict[str, Path]:
    """The three graphs (and with `one_crop` the one-crop search graph, where the variant has one)
    into `folder` under GRAPH_FILES names; returns role -> path."""
    feeds = random_feeds(model, batch=2, seed=0)
    return {role: export_graph(graph, feeds[role], folder / GRAPH_FILES[role], opset)
            for role, graph in graphs_of(model, one_crop).items()}
