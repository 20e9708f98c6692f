"""Tracking without torch (issue 22, item 1): the default weights' prebuilt graphs (what setup.py puts
into the wheel) run `siammask track` in an interpreter where torch and onnx cannot be imported, with
the results of the .pth path; what needs torch there says so in one line naming the extra.

The wheel itself, installed into a venv that has no torch, is .ci/wheel_check's (demo, track, serve)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from siammask.api import DEFAULT_GRAPHS, DEFAULT_WEIGHTS, shipped_graphs
from siammask.cli import main
from siammask.engines.sidecar import SIDECAR, ExportInfo
from siammask.errors import UserError
from siammask.synthetic import make_sequence, write_image_folder

SUBPROCESS_TIMEOUT_S = 300  # hang guard only
needs_weights = pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped default weights")


def without_torch(graphs: Path, argv: list[str], modules: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`siammask ARGV` in a fresh interpreter where importing torch or onnx fails as where they are not
    installed, with `graphs` as the shipped default graphs; stdout's last line says whether torch loaded,
    the line before it (given `modules`) which of them were imported, as a JSON list."""
    code = (f"import json, sys\nsys.modules['torch'] = sys.modules['onnx'] = None  # import -> ModuleNotFoundError\n"
            f"from pathlib import Path\nimport siammask.api\nsiammask.api.DEFAULT_GRAPHS = Path({str(graphs)!r})\n"
            f"from siammask.cli import main\nstatus = main({argv!r})\n"
            + (f"print(json.dumps([m for m in {list(modules)!r} if m in sys.modules]))\n" if modules else "")
            + "print('torch loaded' if sys.modules.get('torch') is not None else 'no torch')\nsys.exit(status)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> Path:
    """What the wheel's build hook makes: `siammask export` of the default weights."""
    folder = tmp_path_factory.mktemp("default-onnx")
    assert main(["export", "--out", str(folder), "-q"]) == 0
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, str]:
    frames = make_sequence(num_frames=8, size=(320, 240), seed=4)
    return (write_image_folder(frames, tmp_path_factory.mktemp("frames") / "seq"),
            ",".join(str(round(v)) for v in frames[0].box))


@needs_weights
@pytest.mark.slow
def test_a_quiet_track_imports_no_progress_bar(graphs, clip, tmp_path):
    """`track -q` shows no bar: tqdm, and the importlib.metadata it reads its version with (20-35 ms of
    start-up together, benchmarks/RESULTS.md), are not imported; with the bar shown they are."""
    folder, box = clip
    bar = ("tqdm", "importlib.metadata")
    argv = ["track", str(folder), "--box", box, "--json", str(tmp_path / "out.jsonl")]
    quiet = without_torch(graphs, [*argv, "-q"], bar)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.splitlines()[-2:] == ["[]", "no torch"]
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 8
    shown = without_torch(graphs, argv, bar)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout.splitlines()[-2]) == list(bar) and "tracking: 100%" in shown.stderr


@needs_weights
@pytest.mark.slow
def test_track_runs_on_the_shipped_graphs_without_torch_as_the_checkpoint_does(graphs, clip, tmp_path, monkeypatch):
    folder, box = clip
    monkeypatch.setenv("SIAMMASK_CACHE_DIR", str(tmp_path / "cache"))  # the checkpoint's own export, made here
    lean, full = tmp_path / "lean.jsonl", tmp_path / "full.jsonl"
    proc = without_torch(graphs, ["track", str(folder), "--box", box, "--json", str(lean), "-q"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "no torch"
    # the same run on the checkpoint (exported on the fly, with torch) gives the same lines
    assert main(["track", str(folder), "--box", box, "--engine", "onnxruntime", "--weights", str(DEFAULT_WEIGHTS),
                 "--json", str(full), "-q"]) == 0
    lean_records = [json.loads(line) for line in lean.read_text().splitlines()]
    assert len(lean_records) == 8 and all(r["mask"] for r in lean_records[1:])
    assert lean_records == [json.loads(line) for line in full.read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["export", "--out", "{tmp}/out"], ["track", "{frames}", "--box", "{box}"],
                                  ["track", "{frames}", "--box", "{box}", "--engine", "torch"]])
def test_what_needs_torch_says_so_in_one_line_naming_the_extra(clip, tmp_path, argv):
    """No graphs (a source checkout) or a torch-only request: one line, exit 2, never a traceback."""
    folder, box = clip
    argv = [a.format(tmp=tmp_path, frames=folder, box=box) for a in argv]
    proc = without_torch(tmp_path / "no-graphs", argv)
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("siammask: error: ") and 'pip install "siammask[torch]"' in proc.stderr
    assert not (tmp_path / "out").exists()


def test_the_shipped_graphs_serve_only_what_the_checkpoint_would_run_on_onnxruntime_fp32(tmp_path, monkeypatch):
    folder = tmp_path / "default-onnx"
    monkeypatch.setattr("siammask.api.DEFAULT_GRAPHS", folder)
    assert shipped_graphs(None, "auto", "cpu", None) is None  # a build without them: the .pth
    folder.mkdir()

    def shipped(variant: str) -> None:  # the files themselves are the engine's to check
        files = {role: f"{role}.onnx" for role in ("template", "search", "mask")}
        info = ExportInfo("onnx", variant, variant, "fp32", 17, {}, files)
        (folder / SIDECAR).write_text(json.dumps(dataclasses.asdict(info)))

    shipped("nano")
    assert shipped_graphs(None, "auto", "cpu", None) == folder
    assert shipped_graphs(None, "onnxruntime", "cpu", "fp32") == folder
    assert shipped_graphs(None, "onnxruntime", "cuda", None) == folder  # ORT's CUDA provider runs them
    assert shipped_graphs("my.pth", "auto", "cpu", None) is None
    assert shipped_graphs(None, "torch", "cpu", None) is None
    assert shipped_graphs(None, "auto", "cuda", None) is None  # auto picks torch on a GPU
    assert shipped_graphs(None, "auto", "cpu", "int8") is None  # another export
    (folder / SIDECAR).write_text("{not json")  # a damaged sidecar: only what would read the graphs fails
    assert shipped_graphs(None, "torch", "cpu", None) is None
    assert shipped_graphs(None, "tensorrt", "cuda", None) is None
    assert shipped_graphs(None, "onnxruntime", "cpu", None) == folder  # the engine's own check says why
    with pytest.raises(UserError):
        shipped_graphs(None, "auto", "cpu", None)
    shipped("lite")  # auto's one rule (engines.registry): torch for the ResNet-style models
    assert shipped_graphs(None, "auto", "cpu", None) is None
    assert shipped_graphs(None, "onnxruntime", "cpu", None) == folder
    assert DEFAULT_GRAPHS.parent == DEFAULT_WEIGHTS.parent


@pytest.mark.parametrize("given", [None, "2"])
def test_the_command_line_gives_numpys_blas_one_thread_unless_the_user_chose(given):
    """OpenBLAS's pool made the tracker's small matrix products ~150 ms each on a busy 2-core box
    (siammask.threads.single_threaded_blas): the CLI sets one thread before a command imports numpy,
    for itself and the processes it starts; the user's own setting wins."""
    code = ("import os, siammask.cli\ntry:\n    siammask.cli.main(['keys', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('OPENBLAS_NUM_THREADS'), 'numpy' in __import__('sys').modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | (
        {"OPENBLAS_NUM_THREADS": given} if given else {})
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=SUBPROCESS_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == f"{given or '1'} False"  # set before numpy was loaded
