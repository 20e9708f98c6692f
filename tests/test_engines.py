"""Engines: each back end against the PyTorch reference on fresh random inputs, the ONNX Runtime
engine through the CLI on the tennis frames, bf16 accuracy, and the errors a user can cause."""
from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import torch

from siammask.checkpoint import load_checkpoint
from siammask.cli import main
from siammask.config import load_hp
from siammask.engines import registry
from siammask.engines.onnxruntime_engine import OnnxRuntimeEngine
from siammask.engines.registry import ENGINES
from siammask.engines.sidecar import FORMAT_VERSION, ONE_CROP, SIDECAR, read_sidecar, sha256
from siammask.engines.torch_engine import TorchEngine
from siammask.errors import UserError, described, first_line
from siammask.evaluation.segmentation import jaccard
from siammask.export.onnx_export import FILES, random_feeds
from siammask.export.verify import TOLERANCES, relative_error
from siammask.threads import set_inference_spinning, set_inference_threads
from siammask.tracker import Tracker

from exports import engine_on, exported, random_model
from reference import TENNIS, TENNIS_BOX, needs_reference, parity_state_dict

VARIANTS = ("sharp", "base", "nano")
TENNIS_FRAMES = 11  # init + 10 steps


@pytest.fixture(scope="session")
def export_dirs(tmp_path_factory):
    root = tmp_path_factory.getbasetemp()
    return {v: exported(v, root) for v in VARIANTS}


def _engine_outputs(engine, feeds) -> dict[str, np.ndarray]:
    features = engine.template(feeds["template"]["z"].numpy())
    heads = engine.track(feeds["search"]["x"].numpy(), features)
    mask = engine.mask(heads, feeds["mask"]["pos_yx"].numpy())
    return {"cls": heads.cls, "loc": heads.loc, "mask": mask}


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_onnxruntime_engine_matches_torch_engine(export_dirs, variant):
    feeds = random_feeds(random_model(variant), batch=2, seed=7)
    ours = _engine_outputs(OnnxRuntimeEngine(export_dirs[variant], variant=variant), feeds)
    ref = _engine_outputs(TorchEngine(random_model(variant)), feeds)
    for name in ref:
        assert relative_error(ours[name], ref[name]) <= TOLERANCES["fp32"], name


@pytest.mark.parametrize("how", ["set", "env"])
def test_onnxruntime_threads_follow_the_inference_thread_setting(export_dirs, monkeypatch, how):
    """--threads / the pipeline's `threads` (siammask.threads) and a Ray worker's OMP_NUM_THREADS govern
    ONNX Runtime too, without torch; and the torch engine follows the same setting."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            if how == "set":
                set_inference_threads(threads)
            else:
                monkeypatch.setenv("OMP_NUM_THREADS", str(threads))
            engine = OnnxRuntimeEngine(export_dirs["nano"])
            assert {s.get_session_options().intra_op_num_threads for s in engine.sessions.values()} == {threads}
            torch.set_num_threads(3)
            TorchEngine(random_model("nano"))
            assert torch.get_num_threads() == threads
    finally:
        set_inference_threads(None)
        torch.set_num_threads(before)


@pytest.mark.parametrize("spinning, policy, entry", [
    (None, "", "1"), (None, "PASSIVE", "0"), (True, "PASSIVE", "1"), (False, "", "0")])
def test_onnxruntime_threads_spin_within_a_run_as_set(export_dirs, monkeypatch, spinning, policy, entry):
    """Threads spin between a run's operators unless told not to (serve: its capture processes decode
    on the same cores; OMP_WAIT_POLICY=PASSIVE: a shared machine), and stop as every run ends."""
    monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    set_inference_threads(2)
    set_inference_spinning(spinning)
    try:
        options = [s.get_session_options() for s in OnnxRuntimeEngine(export_dirs["nano"]).sessions.values()]
    finally:
        set_inference_threads(None)
        set_inference_spinning(None)
    assert {o.get_session_config_entry("session.intra_op.allow_spinning") for o in options} == {entry}
    assert {o.get_session_config_entry("session.force_spinning_stop") for o in options} == {"1"}


def _idle_cpu_after(run, spells: int = 7) -> list[float]:
    """Seconds of this process's CPU time in 50 ms of sleep after each of `spells` calls of `run`."""
    idle = []
    for _ in range(spells):
        run()
        start = time.process_time()
        time.sleep(0.05)
        idle.append(time.process_time() - start)
    return idle


def test_onnxruntime_threads_stop_spinning_when_a_run_ends(export_dirs):
    """The sessions run in turn with CPU work between them: a pool that kept spinning after its run
    would hold a core while the tracker does something else (~47 of 50 ms idle here,
    benchmarks/RESULTS.md). The control is the same graph in a session that spins and is not
    stopped; where this CPU's spin ends too soon to be seen, the test has nothing to tell apart."""
    import onnxruntime as ort

    feeds = random_feeds(random_model("nano"), batch=1, seed=3)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    control = ort.InferenceSession(str(export_dirs["nano"] / FILES["search"]), options,
                                   providers=["CPUExecutionProvider"])
    search = {name: value.numpy() for name, value in feeds["search"].items()}
    spinning = statistics.median(_idle_cpu_after(lambda: control.run(None, search)))
    if spinning < 0.01:
        pytest.skip(f"ONNX Runtime's threads spun only {spinning * 1000:.1f} ms after a run here")
    set_inference_threads(2)
    set_inference_spinning(True)
    try:
        engine = OnnxRuntimeEngine(export_dirs["nano"])
        stopped = _idle_cpu_after(lambda: _engine_outputs(engine, feeds))
    finally:
        set_inference_threads(None)
        set_inference_spinning(None)
    assert min(stopped) < min(0.005, spinning / 4), (stopped, spinning)


def test_graph_engines_of_the_engines_layer_refuse_a_loaded_model_in_one_line():
    """The engines layer runs export directories only: exporting is the layer above's job."""
    for name in ("onnxruntime", "tensorrt"):
        with pytest.raises(UserError, match=f"the {name} engine runs an export directory, not a loaded model"):
            registry.build_engine(name, random_model("lite"))


@pytest.mark.slow
def test_onnxruntime_engine_from_a_loaded_model_and_a_batch_of_targets():
    """build_engine with a model and the export step exports on the fly; three targets are one batch, and slicing and
    joining template features keeps them apart."""
    model = random_model("lite")
    engine = engine_on("onnxruntime", model)
    assert (engine.name, engine.variant, engine.precision, engine.mask_size) == ("onnxruntime", "lite", "fp32", 127)
    feeds = random_feeds(model, batch=3, seed=8)
    features = engine.template(feeds["template"]["z"].numpy())
    joined = engine.concat([features[i:i + 1] for i in range(3)])
    ours = engine.mask(engine.track(feeds["search"]["x"].numpy(), joined), feeds["mask"]["pos_yx"].numpy())
    ref = _engine_outputs(TorchEngine(model), feeds)["mask"]
    assert ours.shape == (3, 127, 127)
    assert relative_error(ours, ref) <= TOLERANCES["fp32"]


def test_torch_bf16_is_close_to_fp32_and_fp16_needs_cuda():
    model = random_model("lite")
    feeds = random_feeds(model, batch=2, seed=9)
    ours = _engine_outputs(TorchEngine(model, precision="bf16"), feeds)
    ref = _engine_outputs(TorchEngine(model), feeds)
    for name in ref:
        assert ours[name].dtype == np.float32
        assert relative_error(ours[name], ref[name]) <= 0.1, name
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--precision fp16 needs --device cuda"):
            TorchEngine(model, precision="fp16")
    with pytest.raises(UserError, match="int8 runs on --engine onnxruntime"):
        engine_on("torch", model, precision="int8")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["lite", "nano"])
def test_torch_compile_matches_eager_at_every_position_it_is_given(variant):
    """The compiled engine (inductor, frozen weights) against eager fp32 on a batch of two targets;
    the mask graph then gets other positions (they are data, so the answer follows them), and the
    engine other numbers of targets."""
    if shutil.which("g++") is None:
        pytest.skip("torch.compile needs g++ on the CPU (.ci/run installs it)")
    model = random_model(variant)
    feeds = random_feeds(model, batch=2, seed=10)
    compiled, eager = engine_on("torch-compile", model), TorchEngine(model)
    assert compiled.name == "torch-compile"
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    ours, ref = _engine_outputs(compiled, feeds), _engine_outputs(eager, feeds)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= graphs + 3  # template, track, mask compiled
    for name in ref:
        assert relative_error(ours[name], ref[name]) <= TOLERANCES["fp32"], name
    features = eager.template(feeds["template"]["z"].numpy())
    heads = [e.track(feeds["search"]["x"].numpy(), features) for e in (compiled, eager)]
    last = heads[1].cls.shape[-1] - 1  # 24 (SiamMask's 25x25 map), 14 (nano's 15x15)
    for pos in ([[0, 0], [last, last]], [[3, last - 2], [last // 2, 5]]):
        pos = np.array(pos, np.int64)
        assert relative_error(compiled.mask(heads[0], pos), eager.mask(heads[1], pos)) <= TOLERANCES["fp32"]
    for batch in (3, 1):  # other numbers of targets: one more build, with the batch dimension dynamic
        feeds = random_feeds(model, batch=batch, seed=11 + batch)
        ours, ref = _engine_outputs(compiled, feeds), _engine_outputs(eager, feeds)
        for name in ref:
            assert ours[name].shape == ref[name].shape and ours[name].shape[0] == batch
            assert relative_error(ours[name], ref[name]) <= TOLERANCES["fp32"], (batch, name)


def test_torch_compile_without_a_compiler_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(UserError, match="torch-compile needs a C\\+\\+ compiler .*use --engine torch$"):
        engine_on("torch-compile", random_model("lite"))


def test_every_registered_engine_is_built_or_refused_in_one_line():
    """No engine may fail with anything but a one-line UserError: bf16 is a torch-only precision,
    tensorrt needs TensorRT and a GPU."""
    model = random_model("lite")
    for name in ENGINES:
        try:
            engine = engine_on(name, model, "cpu", "bf16")
        except UserError as exc:
            assert name != "torch" and "\n" not in str(exc)
            assert name != "torch-compile" or "needs a C++ compiler" in str(exc)
        else:
            assert (engine.name, engine.precision) == (name, "bf16")
    with pytest.raises(UserError, match="unknown engine 'nope'; available: auto, torch, torch-compile, onnxruntime, tensorrt"):
        engine_on("nope", model)


# --- export directories a user may get wrong -------------------------------------------------

def _copy_export(src, dst, replace: dict | None = None):
    """Symlinks to `src`'s graphs (some replaced), with a sidecar whose checksums fit the new files."""
    dst.mkdir()
    for name in FILES.values():
        (dst / name).symlink_to((replace or {}).get(name, src / name))
    data = json.loads((src / SIDECAR).read_text())
    data["sha256"] = {name: sha256(dst / name) for name in FILES.values()}
    (dst / SIDECAR).write_text(json.dumps(data))
    return dst


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("siammask: error: ")
    return err


def _track_argv(folder, weights, *extra):
    return ["track", str(folder), "--box", "60,40,30,30", "--weights", str(weights), "--quiet", *extra]


@pytest.mark.slow
def test_corrupt_graph_is_one_line(tmp_path, capsys, export_dirs, synthetic_folder):
    folder = tmp_path / "corrupt"
    shutil.copytree(export_dirs["base"], folder, symlinks=False)
    (folder / "mask.onnx").write_bytes(b"\x08\x07garbage")
    err = _one_line_error(capsys, _track_argv(synthetic_folder, folder, "--engine", "onnxruntime"))
    assert "mask.onnx' does not match the checksum" in err
    data = json.loads((folder / SIDECAR).read_text())
    data["sha256"]["mask.onnx"] = sha256(folder / "mask.onnx")  # checksum fixed: ONNX Runtime must refuse it
    (folder / SIDECAR).write_text(json.dumps(data))
    with pytest.raises(UserError, match="mask.onnx' is not a usable ONNX graph"):
        OnnxRuntimeEngine(folder)


def test_a_library_error_is_quoted_by_its_first_line():
    """What the one-line UserErrors quote of ONNX Runtime's, onnx.checker's or a warm-up's errors."""
    assert first_line(RuntimeError("\n  [ONNXRuntimeError] : 10 : INVALID_GRAPH\nat node 3\n")) == \
        "[ONNXRuntimeError] : 10 : INVALID_GRAPH"
    assert first_line(KeyError()) == "KeyError"  # no message: the type's name
    assert first_line(ValueError("x" * 300)) == "x" * 200 and first_line(ValueError("abc"), limit=2) == "ab"
    assert described(KeyError()) == "KeyError"  # not "KeyError: KeyError"
    assert described(RuntimeError("bad shape\nat node 3")) == "RuntimeError: bad shape"


@pytest.mark.slow
def test_mismatched_graphs_are_one_line(tmp_path, capsys, export_dirs, synthetic_folder):
    err = _one_line_error(capsys, _track_argv(synthetic_folder, export_dirs["base"], "--engine", "onnxruntime",
                                              "--variant", "sharp"))
    assert "holds an export of the base model, but --variant sharp" in err
    with pytest.raises(UserError, match="holds base graphs but the sharp variant was asked for"):
        OnnxRuntimeEngine(export_dirs["base"], variant="sharp")
    # the base model's mask graph in a sharp export, checksums updated: the graph's inputs give it away
    swapped = _copy_export(export_dirs["sharp"], tmp_path / "swapped", {"mask.onnx": export_dirs["base"] / "mask.onnx"})
    with pytest.raises(UserError, match=r"mask.onnx' has inputs \['mask_corr', 'pos_yx'\]"):
        OnnxRuntimeEngine(swapped)
    with pytest.raises(UserError, match="holds fp32 graphs but --precision int8"):
        OnnxRuntimeEngine(export_dirs["base"], precision="int8")


def test_the_batched_search_graph_opens_with_the_first_batch(export_dirs, tmp_path):
    """With a one-crop graph (nano) the batched search graph serves only batches (several targets, a
    lost target's windows): its session opens when the first batch comes, once however many threads
    ask, from the graph as it was read at load (a temporary export's folder is gone by then). Without
    one (base) every graph opens at once."""
    folder = shutil.copytree(export_dirs["nano"], tmp_path / "temporary")
    engine = OnnxRuntimeEngine(folder)
    shutil.rmtree(folder)
    assert "search" in engine.sessions  # asking does not open it
    assert set(engine.sessions.opened()) == {"template", "mask", ONE_CROP}
    feeds = random_feeds(random_model("nano"), batch=2, seed=7)
    features = engine.template(feeds["template"]["z"].numpy())
    engine.track(feeds["search"]["x"][1:].numpy(), features[1:])
    assert "search" not in engine.sessions.opened()
    with ThreadPoolExecutor(max_workers=4) as pool:
        asked = list(pool.map(lambda _: engine.sessions["search"], range(4)))
    assert all(session is asked[0] for session in asked)
    assert engine.track(feeds["search"]["x"].numpy(), features).cls.shape[0] == 2
    assert set(engine.sessions.opened()) == set(engine.sessions) == {"template", "search", "mask", ONE_CROP}
    assert set(OnnxRuntimeEngine(export_dirs["base"]).sessions.opened()) == {"template", "search", "mask"}


@pytest.mark.slow
def test_one_crop_runs_nanos_one_crop_graph_with_the_batched_graphs_heads(export_dirs):
    """nano's export has a search graph for one crop (its correlations grouped convolutions, the
    common case of one tracked target) beside the batched one: the engine opens it, and one crop
    gets the heads it gets in a batch. The other variants have none."""
    engine = OnnxRuntimeEngine(export_dirs["nano"])
    assert set(engine.sessions) == {"template", "search", "mask", ONE_CROP}
    assert ONE_CROP not in OnnxRuntimeEngine(export_dirs["base"]).sessions
    feeds = random_feeds(random_model("nano"), batch=2, seed=7)
    features = engine.template(feeds["template"]["z"].numpy())
    both = engine.track(feeds["search"]["x"].numpy(), features)
    one = engine.track(feeds["search"]["x"][1:].numpy(), features[1:])
    assert one.cls.shape[0] == 1
    for name, got, batched in [("cls", one.cls, both.cls[1:]), ("loc", one.loc, both.loc[1:]),
                               *[(k, one.context[k], v[1:]) for k, v in both.context.items()]]:
        assert relative_error(got, batched) <= TOLERANCES["fp32"], name


def test_a_sidecar_with_an_unknown_role_is_refused_and_one_without_the_one_crop_graph_is_read(tmp_path, capsys):
    roles = {"template": "template.onnx", "search": "search.onnx", "mask": "mask.onnx"}
    for name, files in (("old", roles), ("extra", {**roles, "search_two": "search_two.onnx"}),
                        ("short", {"template": "template.onnx", ONE_CROP: "search_one.onnx"})):
        folder = tmp_path / name
        folder.mkdir()
        (folder / SIDECAR).write_text(json.dumps({"format": "siammask-export", "format_version": FORMAT_VERSION, "backend": "onnx",
                                                  "variant": "nano", "hp": "nano", "precision": "fp32", "opset": 17,
                                                  "input_sizes": {}, "files": files}))
    assert read_sidecar(tmp_path / "old", check_files=False).files == roles  # an export made before it
    for name in ("extra", "short"):
        with pytest.raises(UserError, match=r"lists roles .*expected \['template', 'search', 'mask'\] \(and "
                                            r"optionally search_one\); re-export"):
            read_sidecar(tmp_path / name, check_files=False)


@pytest.mark.slow
def test_missing_file_sidecar_or_engine_are_one_line(tmp_path, capsys, export_dirs, synthetic_folder):
    missing = _copy_export(export_dirs["base"], tmp_path / "missing")
    (missing / "search.onnx").unlink()
    err = _one_line_error(capsys, _track_argv(synthetic_folder, missing, "--engine", "onnxruntime"))
    assert "is missing search.onnx; re-export it" in err
    (tmp_path / "empty").mkdir()
    err = _one_line_error(capsys, _track_argv(synthetic_folder, tmp_path / "empty", "--engine", "onnxruntime"))
    assert f"has no {SIDECAR}" in err
    err = _one_line_error(capsys, _track_argv(synthetic_folder, export_dirs["base"], "--engine", "nope"))
    assert "unknown engine 'nope'" in err
    err = _one_line_error(capsys, _track_argv(synthetic_folder, export_dirs["base"], "--engine", "torch"))
    assert "the torch engine loads a .pth checkpoint" in err


# --- the real clip, with the reference's parity weights ----------------------------------------

@pytest.fixture(scope="module")
def tennis(tmp_path_factory):
    """The first frames of the tennis clip in their own folder, and the sharp parity checkpoint."""
    folder = tmp_path_factory.mktemp("tennis")
    for path in sorted(TENNIS.glob("*.jpg"))[:TENNIS_FRAMES]:
        shutil.copy(path, folder / path.name)
    weights = folder.parent / "parity_sharp.pth"
    torch.save(parity_state_dict("sharp"), weights)
    return folder, weights


def _tennis_frames(folder):
    return [cv2.imread(str(p)) for p in sorted(folder.glob("*.jpg"))]


def _torch_run(weights, frames):
    tracker = Tracker(TorchEngine(load_checkpoint(weights).model), load_hp("davis"))
    states = tracker.init(frames[0], [TENNIS_BOX])
    results = []
    for frame in frames[1:]:
        states, (res,) = tracker.step(frame, states)
        results.append(res)
    return results


@pytest.mark.slow
@needs_reference
@pytest.mark.reference
def test_cli_onnxruntime_reproduces_the_torch_run_on_tennis(tennis, tmp_path):
    from siammask.io.results import decode_mask

    folder, weights = tennis
    out = tmp_path / "ort.jsonl"
    box = ",".join(str(v) for v in TENNIS_BOX)
    assert main(["track", str(folder), "--box", box, "--weights", str(weights), "--engine", "onnxruntime",
                 "--json", str(out), "--quiet"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    ref = _torch_run(weights, _tennis_frames(folder))
    assert len(lines) == TENNIS_FRAMES
    for line, res in zip(lines[1:], ref):
        assert np.abs(np.array(line["box"]) - res.box).max() <= 0.5, line["frame"]
        assert jaccard(decode_mask(line["mask"]), res.mask) >= 0.99, line["frame"]


@pytest.mark.slow
@needs_reference
@pytest.mark.reference
def test_torch_bf16_masks_on_tennis(tennis):
    """Each bf16 step starts from the fp32 state, so the IoU measures one step's rounding, not two
    chaotic trajectories (the parity weights are untrained) drifting apart."""
    folder, weights = tennis
    frames = _tennis_frames(folder)
    model = load_checkpoint(weights).model
    fp32, bf16 = (Tracker(TorchEngine(model, precision=p), load_hp("davis")) for p in ("fp32", "bf16"))
    (state,), (start,) = fp32.init(frames[0], [TENNIS_BOX]), bf16.init(frames[0], [TENNIS_BOX])
    ious = []
    for frame in frames[1:]:
        _, (ours,) = bf16.step(frame, [dataclasses.replace(start, pos=state.pos, size=state.size)])
        (state,), (ref,) = fp32.step(frame, [state])
        ious.append(jaccard(ours.mask, ref.mask))
    print("bf16 vs fp32 mask IoU per frame:", " ".join(f"{v:.3f}" for v in ious))
    assert min(ious) >= 0.9
