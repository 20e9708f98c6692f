"""How many threads inference may use in this process: one setting every back end reads.

`--threads` (serve, bench) and the pipeline's `threads` set it; otherwise OMP_NUM_THREADS decides
(Ray sets it for a worker of num_cpus N), which PyTorch reads itself but ONNX Runtime does not.
ONNX Runtime sizes its intra-op pool by it and the torch back ends call torch.set_num_threads with
it, so neither takes every core in each worker process, and the torch-free back ends never need
torch to learn the count. Whether ONNX Runtime's threads spin within a run is a second setting here
(set_inference_spinning)."""
from __future__ import annotations

import os

_chosen: int | None = None
_spinning: bool | None = None
BLAS_ENV = "OPENBLAS_NUM_THREADS"


def single_threaded_blas() -> None:
    """One thread for numpy's OpenBLAS, unless the user set its count: call before numpy is imported
    (OpenBLAS reads it once). The tracker's matrix products are small (presence: 8x6144 by 6144x32),
    and OpenBLAS's pool made each of them ~150 ms on a busy 2-core box against 0.07 ms on one thread,
    which cost 0.5 s before the first result and half of an 8-target step (benchmarks/RESULTS.md).
    The CLI owns its process, so it calls this; a library never changes its host's threads."""
    os.environ.setdefault(BLAS_ENV, "1")


def set_inference_threads(count: int | None) -> None:
    """Use `count` threads for inference from now on (None: back to OMP_NUM_THREADS or the default)."""
    global _chosen
    _chosen = count


def set_inference_spinning(on: bool | None) -> None:
    """Whether ONNX Runtime's threads spin between the operators of a run (None: back to the
    default); the torch back ends do not read it. Sessions read it as they open: set it before
    loading a tracker (an engine opens its batched search graph only on first use). Spinning saves
    waking a thread for each of a graph's ~100 small operators (nano's step ~1.5x faster on 2
    otherwise idle cores) but takes cores that other work needs: with video decoders beside it on
    2 cores the step took up to 2.3x as long (benchmarks/RESULTS.md). `serve`, whose capture
    processes decode on the same cores, sets it from its config (model.spin, off unless set)."""
    global _spinning
    _spinning = on


def inference_spinning() -> bool:
    """Whether ONNX Runtime's threads spin within a run: as set, else not where OMP_WAIT_POLICY is
    PASSIVE (the convention PyTorch's OpenMP threads follow too), else yes (ONNX Runtime's own
    default)."""
    if _spinning is not None:
        return _spinning
    return os.environ.get("OMP_WAIT_POLICY", "").strip().upper() != "PASSIVE"


def inference_threads() -> int | None:
    """The thread count set, else OMP_NUM_THREADS when it is a positive number, else None (each
    library's own default: one thread per physical core)."""
    if _chosen:
        return _chosen
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(env) if env.isdigit() and int(env) > 0 else None
