"""Which CPU execution path runs the sharp search branch (trunk + heads, batch 1) fastest?

Compares, interleaved in one process on the same inputs: PyTorch eager (fp32, bf16 autocast
everywhere, bf16 as the torch engine applies it), torch.jit.trace + freeze (fp32, bf16), the
oneDNN graph fuser, optionally torch.compile (inductor, freezing; --compile, slow to build), and
ONNX Runtime on the exported graph (basic vs full graph optimisation, int8 QDQ). The relative
error column is max|out - fp32| / max|fp32| over the six outputs, on seeded random weights (speed
does not depend on weight values; errors on other weights differ: see precision_accuracy.py).

    OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_engines.py [--steps 15] [--compile]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from siammask.engines.torch_engine import _bf16_model, _compiled
from siammask.export.exporter import export_model
from siammask.export.graphs import SearchGraph
from siammask.export.onnx_export import random_feeds
from siammask.export.verify import relative_error
from siammask.model import SiamMask

Run = Callable[[], tuple]


def torch_paths(model: SiamMask, feeds: dict, compile_too: bool) -> dict[str, Run]:
    args = tuple(feeds.values())
    args = (args[0].contiguous(memory_format=torch.channels_last), *args[1:])
    plain = SearchGraph(model.to(memory_format=torch.channels_last)).eval()
    mixed = SearchGraph(_bf16_model(model).to(memory_format=torch.channels_last)).eval()

    def autocast(graph):
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return graph(*args)
        return run

    def frozen(bf16: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            traced = torch.jit.trace(plain, args, check_trace=False)
        traced = torch.jit.freeze(traced)
        return lambda: traced(*args)

    paths = {"torch eager fp32": lambda: plain(*args), "torch eager bf16 (all layers)": autocast(plain),
             "torch eager bf16 (engine: layer3 on)": autocast(mixed),
             "torch jit.freeze fp32": frozen(False), "torch jit.freeze bf16 (all layers)": frozen(True)}
    try:
        torch.jit.enable_onednn_fusion(True)
        fused = frozen(True)
        fused()
        paths["torch oneDNN graph bf16"] = fused
    except RuntimeError as exc:
        print(f"oneDNN graph fuser failed: {str(exc).splitlines()[0]}", file=sys.stderr)
    finally:
        torch.jit.enable_onednn_fusion(False)
    if compile_too:
        compiled = _compiled(plain)
        start = time.perf_counter()
        autocast(compiled)()
        print(f"torch.compile: {time.perf_counter() - start:.0f} s to build", file=sys.stderr)
        paths["torch.compile inductor bf16 (all layers)"] = autocast(compiled)
    return paths


def ort_paths(model: SiamMask, feeds: dict, folder: Path) -> dict[str, Run]:
    numpy_feeds = {k: v.numpy() for k, v in feeds.items()}
    export_model(model, folder / "fp32")
    export_model(model, folder / "int8", precision="int8")
    basic, full = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    paths = {}
    for label, sub, level in (("onnxruntime fp32 (basic optimisation)", "fp32", basic),
                              ("onnxruntime fp32 (all optimisations)", "fp32", full),
                              ("onnxruntime int8 (engine: layer3 on)", "int8", full)):
        options = ort.SessionOptions()
        options.graph_optimization_level, options.log_severity_level = level, 3
        session = ort.InferenceSession(str(folder / sub / "search.onnx"), options, providers=["CPUExecutionProvider"])
        paths[label] = lambda s=session: tuple(s.run(None, numpy_feeds))
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (about a minute to build)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    model = SiamMask("sharp").eval().requires_grad_(False)
    feeds = random_feeds(model, batch=1, seed=0)["search"]
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        paths = {**torch_paths(model, feeds, args.compile), **ort_paths(model, feeds, Path(tmp))}
        reference = [np.asarray(t, np.float32) for t in paths["torch eager fp32"]()]
        times: dict[str, list[float]] = {k: [] for k in paths}
        for run in paths.values():
            run()
        for _ in range(args.steps):
            for label, run in paths.items():
                start = time.perf_counter()
                run()
                times[label].append((time.perf_counter() - start) * 1000)
        print(f"sharp search branch (trunk + heads), batch 1, torch {torch.__version__} ({torch.get_num_threads()} "
              f"threads), onnxruntime {ort.__version__}, {args.steps} interleaved runs (ms)\n")
        print("| path | median | min | rel. error vs fp32 |\n|---|---|---|---|")
        for label, run in paths.items():
            out = [np.asarray(t.float() if isinstance(t, torch.Tensor) else t, np.float32) for t in run()]
            err = max(relative_error(a, b) for a, b in zip(out, reference))
            print(f"| {label} | {statistics.median(times[label]):.1f} | {min(times[label]):.1f} | {err:.2g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
