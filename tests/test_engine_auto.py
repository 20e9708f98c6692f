"""`--engine auto` and the export cache: which back end auto picks, that ONNX exports are made once
and reused (keyed by the weights), that processes exporting together end with one folder, and that
an unwritable cache only costs a temporary export."""
from __future__ import annotations

import json
import multiprocessing
import os

import numpy as np
import onnxruntime
import pytest
import torch

from siammask.api import DEFAULT_WEIGHTS
from siammask.cli import make_parser
from siammask.commands.common import build_tracker
from siammask.errors import UserError
from siammask.export.cache import cache_root, export_key
from siammask.export.onnx_export import OPSET, random_feeds
from siammask.engines.names import AUTO, BACKENDS, ENGINE_CHOICES
from siammask.engines.registry import ENGINES, resolve_engine
from siammask.export.verify import TOLERANCES, relative_error
from siammask.pipeline.config import apply_cli, load_config
from siammask.pipeline.inference import stage_tracker
from siammask.threads import set_inference_threads

from exports import engine_on, exported, random_model


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("SIAMMASK_CACHE_DIR", str(root))
    return root / "exports"


def _finished(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def test_auto_picks_the_back_end_measured_fastest_for_the_variant_on_a_cpu():
    nano, lite = random_model("nano"), random_model("lite")
    assert resolve_engine("auto", nano) == "onnxruntime"
    assert resolve_engine("auto", nano, precision="fp32") == "onnxruntime"
    assert resolve_engine("auto", lite) == "torch"
    assert resolve_engine("auto", nano, precision="bf16") == "torch"  # a torch-only precision
    assert resolve_engine("auto", nano, device="cuda") == "torch"
    assert resolve_engine("auto", lite, precision="int8") == "onnxruntime"
    assert resolve_engine("torch", nano) == "torch"  # a named engine is taken as given


@pytest.mark.slow  # exports a graph
def test_auto_on_an_export_directory_runs_the_back_end_it_was_exported_for(tmp_path_factory):
    folder = exported("nano", tmp_path_factory.getbasetemp())
    assert resolve_engine("auto", folder) == "onnxruntime"


def test_an_unknown_engine_is_one_line_naming_auto():
    with pytest.raises(UserError, match="unknown engine 'onnx'; available: auto, torch, torch-compile"):
        resolve_engine("onnx", random_model("nano"))
    assert ENGINE_CHOICES[0] == "auto"


def test_the_export_key_follows_the_weights_and_the_precision():
    model = random_model("nano")
    key = export_key(model, "fp32", OPSET)
    assert key == export_key(model, "fp32", OPSET)
    assert key != export_key(model, "fp16", OPSET)
    changed = type(model)().eval()
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        changed.refine.post0.weight[0, 0, 0, 0] += 1e-3
    assert key != export_key(changed, "fp32", OPSET)


def test_the_export_key_follows_the_code_that_writes_the_graphs(tmp_path, monkeypatch):
    """An upgrade that changes how a graph is written must not reuse an older export of the same weights."""
    from siammask.export import cache as cache_module

    sources = cache_module._graph_sources()
    assert {"refine.py", "nano.py", "graphs.py"} <= {p.name for p in sources}
    model = random_model("nano")
    copies = []
    for source in sources:
        copies.append(tmp_path / source.name)
        copies[-1].write_bytes(source.read_bytes())
    monkeypatch.setattr(cache_module, "_graph_sources", lambda: copies)
    key = export_key(model, "fp32", OPSET)
    copies[0].write_bytes(copies[0].read_bytes() + b"# changed\n")
    assert export_key(model, "fp32", OPSET) != key


@pytest.mark.slow  # exports a graph
def test_auto_exports_once_then_reuses_the_cached_graphs(cache):
    model = random_model("nano")
    first = engine_on("auto", model)
    assert first.name == "onnxruntime"
    (folder,) = _finished(cache)
    sidecar = cache / folder / "siammask_export.json"
    stamp = sidecar.stat().st_mtime_ns
    second = engine_on("auto", model)
    assert _finished(cache) == [folder] and sidecar.stat().st_mtime_ns == stamp  # not exported again
    assert json.loads(sidecar.read_text())["variant"] == "nano"
    assert not [p for p in cache.iterdir() if p.name.startswith(".partial-")]

    feeds = random_feeds(model, batch=1, seed=3)
    z, x = feeds["template"]["z"].numpy(), feeds["search"]["x"].numpy()
    a, b = first.track(x, first.template(z)), second.track(x, second.template(z))
    np.testing.assert_array_equal(a.cls, b.cls)
    reference = engine_on("torch", model)
    ref = reference.track(x, reference.template(z))
    assert relative_error(a.cls, ref.cls) <= TOLERANCES["fp32"]
    assert relative_error(a.loc, ref.loc) <= TOLERANCES["fp32"]


@pytest.mark.slow  # exports a graph twice
def test_a_damaged_cached_export_is_made_again(cache, caplog):
    """A cached export whose graph was deleted or changed by hand is exported again, not reported
    as an unusable graph pointing into the cache."""
    model = random_model("nano")
    engine_on("auto", model)
    (folder,) = _finished(cache)
    (cache / folder / "search.onnx").unlink()
    engine = engine_on("auto", model)
    assert engine.name == "onnxruntime" and "damaged" in caplog.text
    assert _finished(cache) == [folder] and (cache / folder / "search.onnx").is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".partial-")]


@pytest.mark.slow  # exports a graph
def test_an_unwritable_cache_falls_back_to_a_temporary_export(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("SIAMMASK_CACHE_DIR", str(blocker))
    engine = engine_on("onnxruntime", random_model("nano"))
    assert engine.name == "onnxruntime"
    assert blocker.read_text().startswith("a file")
    assert "not writable" in caplog.text


def _build_in_child(barrier) -> None:
    torch.set_num_threads(1)  # the export's
    set_inference_threads(1)  # the engine's
    barrier.wait()
    engine_on("auto", random_model("nano"))


@pytest.mark.slow
def test_processes_exporting_together_leave_one_finished_export(cache):
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    children = [context.Process(target=_build_in_child, args=(barrier,)) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(180)
    assert [child.exitcode for child in children] == [0, 0]
    assert len(_finished(cache)) == 1
    assert os.listdir(cache) == _finished(cache)  # no partial folder left behind
    assert cache_root() == cache.parent


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory):
    """One export cache for the module's tests (each export of the default weights takes seconds)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIAMMASK_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.mark.slow  # exports the default weights once
@pytest.mark.skipif(not DEFAULT_WEIGHTS.is_file(), reason="no shipped default weights")
@pytest.mark.parametrize("options, engine", [
    ([], "onnxruntime"),                                  # auto on a CPU: the nano model's fastest
    (["--engine", "auto", "--precision", "bf16"], "torch"),  # auto: a precision only torch has
    (["--engine", "torch"], "torch"),
    (["--engine", "onnxruntime", "--precision", "fp32"], "onnxruntime"),
])
def test_track_and_serve_build_the_same_engine_from_the_same_options(module_cache, options, engine):
    """`siammask track` (commands.common.build_tracker) and serve's inference stage (its config's model
    section, pipeline.inference.stage_tracker) go through one build_engine: the same options give the
    same back end running the same graphs; `auto` gives real ONNX Runtime sessions."""
    weights = ["--weights", str(DEFAULT_WEIGHTS)]
    track = make_parser().parse_args(["track", "frames", "--box", "1,1,5,5", *weights, *options])
    serve = make_parser().parse_args(["serve", "--source", "frames", *weights, *options])
    ours, theirs = build_tracker(track).engine, stage_tracker(apply_cli(load_config(None), serve).model).engine
    assert (ours.name, ours.variant, ours.precision) == (theirs.name, theirs.variant, theirs.precision)
    assert (ours.name, ours.variant) == (engine, "nano")
    if engine == "onnxruntime":
        assert ours.folder == theirs.folder  # the same graph files
        assert all(isinstance(s, onnxruntime.InferenceSession) for s in ours.sessions.values())
    z = np.random.default_rng(5).uniform(0, 255, (1, 3, 127, 127)).astype(np.float32)
    mine, other = ours.template(z), theirs.template(z)
    for a, b in zip((mine.cls, mine.loc, mine.mask), (other.cls, other.loc, other.mask)):
        np.testing.assert_array_equal(torch.as_tensor(a).float().numpy(), torch.as_tensor(b).float().numpy())


def test_the_inference_stage_has_every_graph_open_before_its_first_frame():
    """`track` opens the batched search graph when it is first needed (a lost target, several
    targets); serve's inference stage warms its tracker up, so a live stream does not stall on it."""
    serve = make_parser().parse_args(["serve", "--source", "frames", "--weights", str(DEFAULT_WEIGHTS)])
    engine = stage_tracker(apply_cli(load_config(None), serve).model).engine
    assert engine.name == "onnxruntime"
    assert set(engine.sessions.opened()) == set(engine.sessions) and "search" in engine.sessions
    track = make_parser().parse_args(["track", "frames", "--box", "1,1,5,5", "--weights", str(DEFAULT_WEIGHTS)])
    assert "search" not in build_tracker(track).engine.sessions.opened()


def test_every_engine_name_has_its_back_end():
    """engines/names.py (what the command line and serve's config accept) and the registry's
    factories name the same back ends, so a name that passes the config check can be built."""
    assert set(ENGINES) == set(BACKENDS) and ENGINE_CHOICES == (AUTO, *BACKENDS)


def test_crop_sizes_the_model_cannot_run_stop_the_inference_stage_with_one_line(tmp_path):
    """Sizes inside their ranges that the model cannot run (a 63-pixel exemplar for nano) are found
    by the stage's warm-up: one UserError (the stage exits FATAL, not in a restart loop)."""
    from siammask.config import CONFIG_DIR
    hp = tmp_path / "small.yaml"
    hp.write_text((CONFIG_DIR / "hp" / "nano.yaml").read_text() + "exemplar_size: 63\ninstance_size: 127\n")
    serve = make_parser().parse_args(["serve", "--source", "frames", "--weights", str(DEFAULT_WEIGHTS),
                                      "--hp", str(hp)])
    with pytest.raises(UserError, match="cannot track with these settings") as info:
        stage_tracker(apply_cli(load_config(None), serve).model)
    assert "\n" not in str(info.value)
