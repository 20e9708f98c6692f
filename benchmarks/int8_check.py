"""Is int8 worth it on this CPU? (issue 22, item 5.) Each graph of the default model quantized as
`siammask export --precision int8` quantizes it (ONNX Runtime static QDQ, per-channel weights,
calibrated on the tracker's own inputs of a synthetic clip), against its float32 graph: the relative
error of every output on a held-out input (the export's check: <= 0.25) and the median time of one
batch-1 run, int8 and float32 alternating in one process.

    python benchmarks/int8_check.py [--runs 150] [--threads 2] [--json out.json]

A graph is worth quantizing only where it both holds parity and runs faster."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from siammask.threads import single_threaded_blas

single_threaded_blas()  # as the CLI runs, before numpy is imported

import numpy as np
import torch

from siammask.api import load_model
from siammask.config import load_hp
from siammask.engines.onnx_session import open_session
from siammask.engines.onnxruntime_engine import OnnxRuntimeEngine
from siammask.evaluation.timing import cpu_name
from siammask.export.calibration import collect_feeds, synthetic_clip
from siammask.export.exporter import export_model
from siammask.export.onnx_export import FILES, graphs_of
from siammask.export.quantize import quantize_graph
from siammask.export.verify import TOLERANCES, relative_error, torch_outputs
from siammask.variants import variant_spec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=150, help="timed runs of each graph (default: 150)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (default: 2)")
    parser.add_argument("--json", help="write the numbers as JSON here")
    args = parser.parse_args()
    ckpt, hp = load_model()
    model = ckpt.model.eval()
    rows = {}
    with tempfile.TemporaryDirectory(prefix="int8-check-") as tmp:
        work = Path(tmp)
        export_model(model, work, hp=hp)  # the verified float32 graphs and their sidecar
        frames, box = synthetic_clip()
        feeds = collect_feeds(OnnxRuntimeEngine(work), load_hp(hp), frames, box)
        for role, graph in graphs_of(model).items():
            mine = [{name: f[name] for name in graph.inputs} for f in feeds[role]]
            int8 = quantize_graph(work / FILES[role], work / f"int8-{FILES[role]}", mine[:-1], False,
                                  variant_spec(model.variant).float32_stages)
            held_out = {name: value[:1] for name, value in mine[-1].items()}
            reference = torch_outputs(graph.module, {k: torch.from_numpy(v) for k, v in held_out.items()},
                                      graph.outputs)
            sessions = {"fp32": open_session(work / FILES[role], ["CPUExecutionProvider"], args.threads),
                        "int8": open_session(int8, ["CPUExecutionProvider"], args.threads)}
            got = dict(zip(graph.outputs, sessions["int8"].run(list(graph.outputs), held_out)))
            errors = {name: relative_error(got[name], reference[name]) for name in reference}
            times: dict[str, list[float]] = {"fp32": [], "int8": []}
            for run in range(args.runs + 5):
                for name in (("fp32", "int8") if run % 2 else ("int8", "fp32")):
                    start = time.perf_counter()
                    sessions[name].run(None, held_out)
                    if run >= 5:
                        times[name].append((time.perf_counter() - start) * 1000)
            ms = {name: float(np.median(v)) for name, v in times.items()}
            rows[role] = {"max_rel_error": errors, "parity": max(errors.values()) <= TOLERANCES["int8"],
                          "fp32_ms": ms["fp32"], "int8_ms": ms["int8"], "int8_over_fp32": ms["int8"] / ms["fp32"]}
    print(f"{cpu_name()}, load {os.getloadavg()[0]:.2f}; {args.threads} threads; batch 1, {args.runs} runs each, "
          f"alternating\n\n| graph | worst output: relative error (<= {TOLERANCES['int8']}) | fp32 ms | int8 ms | "
          "int8 / fp32 |\n|---|---|---|---|---|")
    for role, row in rows.items():
        worst = max(row["max_rel_error"], key=row["max_rel_error"].get)
        print(f"| {role} | {worst} {row['max_rel_error'][worst]:.3f} ({'holds' if row['parity'] else 'fails'}) | "
              f"{row['fp32_ms']:.2f} | {row['int8_ms']:.2f} | {row['int8_over_fp32']:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu_name(), "load_average": os.getloadavg(),
                                               "threads": args.threads, "graphs": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
