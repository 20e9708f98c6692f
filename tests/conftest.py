"""Shared fixtures: checkpoints with seeded random weights (no real weights are needed to test
loading, the CLI and the pipeline), and small synthetic videos."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from siammask.checkpoint import save_checkpoint
from siammask.model import SiamMask
from siammask.synthetic import make_sequence, write_image_folder, write_video


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
