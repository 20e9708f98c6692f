"""Shared fixtures: checkpoints with seeded random weights (no real weights are needed to test
loading, the CLI and the pipeline), a lite tracker, small synthetic videos; and `--order`, which
runs the tests reversed or shuffled; a TMPDIR of a test's own (`own_tmpdir`)."""
from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from siammask.checkpoint import save_checkpoint
from siammask.model import SiamMask
from siammask.synthetic import make_sequence, write_image_folder, write_video


# --engine auto keeps ONNX exports in a cache (export/cache.py): the tests' own, never the user's;
# set at import so the commands' child processes (pipeline stages) inherit it.
os.environ["SIAMMASK_CACHE_DIR"] = tempfile.mkdtemp(prefix="siammask-test-cache-")


def pytest_sessionfinish(session, exitstatus) -> None:
    shutil.rmtree(os.environ["SIAMMASK_CACHE_DIR"], ignore_errors=True)


def _random_model(variant: str) -> SiamMask:
    torch.manual_seed(0)
    return SiamMask(variant).eval()


@pytest.fixture(scope="session")
def sharp_checkpoint(tmp_path_factory) -> Path:
    """Our checkpoint format, sharp variant, seeded random weights."""
    return save_checkpoint(_random_model("sharp"), tmp_path_factory.mktemp("ckpt") / "sharp.pth",
                           config={"hp": "davis"})


@pytest.fixture(scope="session")
def base_checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(_random_model("base"), tmp_path_factory.mktemp("ckpt") / "base.pth")


@pytest.fixture(scope="session")
def lite(tmp_path_factory) -> Path:
    """The lite variant (fast on a CPU) with seeded random weights: what the pipeline tests serve."""
    from pipeline_support import lite_checkpoint
    return lite_checkpoint(tmp_path_factory.mktemp("lite") / "lite.pth")


@pytest.fixture(scope="module")
def lite_tracker(lite):
    """A Tracker on the lite checkpoint, with one torch thread while the module runs (two spinning
    threads on a busy two-core box are many times slower than one)."""
    from siammask.api import load_tracker
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_tracker(lite)
    torch.set_num_threads(threads)


@pytest.fixture
def own_tmpdir(monkeypatch) -> Iterator[Path]:
    """A TMPDIR of the test's own (short: ipc paths), so the private folder is too."""
    base = Path(tempfile.mkdtemp(prefix="private-", dir="/tmp"))
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(base))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def synthetic_frames():
    """12 frames, 160x120, with true boxes and masks."""
    return make_sequence(num_frames=12, size=(160, 120), seed=3)


@pytest.fixture(scope="session")
def synthetic_video(tmp_path_factory, synthetic_frames) -> Path:
    return write_video(synthetic_frames, tmp_path_factory.mktemp("video") / "seq.avi")


@pytest.fixture(scope="session")
def synthetic_folder(tmp_path_factory, synthetic_frames) -> Path:
    return write_image_folder(synthetic_frames, tmp_path_factory.mktemp("frames") / "seq")


# --- test order ---------------------------------------------------------------------------------------
# Tests must pass alone and in any order. `--order reverse` (what .ci/run checks the pipeline tests
# with) and `--order shuffle` run them otherwise than written; each module's tests stay together, so
# a module's shared fixture is still set up once.

def pytest_addoption(parser):
    parser.addoption("--order", choices=("given", "reverse", "shuffle"), default="given",
                     help="run the modules, and the tests inside each, as written, reversed or shuffled")
    parser.addoption("--order-seed", type=int, default=None, help="seed of --order shuffle (default: random)")


def pytest_configure(config):
    if config.getoption("--order") == "shuffle" and config.getoption("--order-seed") is None:
        config.option.order_seed = random.randrange(10**6)


def pytest_report_header(config):
    if config.getoption("--order") != "given":
        seed = config.getoption("--order-seed")
        return f"test order: {config.getoption('--order')}" + (f" (--order-seed {seed})" if seed is not None else "")


def pytest_collection_modifyitems(config, items):
    order = config.getoption("--order")
    if order == "given":
        return
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    groups = list(modules.values())
    if order == "reverse":
        groups = [group[::-1] for group in groups[::-1]]
    else:
        rng = random.Random(config.getoption("--order-seed"))
        rng.shuffle(groups)
        for group in groups:
            rng.shuffle(group)
    items[:] = [item for group in groups for item in group]
