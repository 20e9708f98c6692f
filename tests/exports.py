"""Exports shared by test_export.py and test_engines.py: each variant is exported once per test
session (the ResNet-50 graphs are ~140 MB and take tens of seconds), into the session's tmp dir."""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from siammask.backend import Engine
from siammask.engines.registry import ModelSource, build_engine
from siammask.export.exporter import export_model
from siammask.export.runtime import exported_graphs
from siammask.model import TrackingNet, build_model


@functools.cache
def random_model(variant: str) -> TrackingNet:
    """The same seeded random weights as conftest's checkpoints; one instance per session (engines
    may switch it to channels-last, which changes no value)."""
    torch.manual_seed(0)
    return build_model(variant).eval()


@functools.cache
def exported(variant: str, root: Path, precision: str = "fp32") -> Path:
    """Export directory of random_model(variant) at `precision`, made on first use."""
    folder = root / f"export-{variant}-{precision}"
    export_model(random_model(variant), folder, precision=precision)
    return folder


def engine_on(name: str, source: ModelSource, device: str = "cpu", precision: str | None = None) -> Engine:
    """build_engine as siammask.load_tracker calls it: a graph back end on a loaded model is exported
    on the fly."""
    return build_engine(name, source, device, precision, export=exported_graphs)
