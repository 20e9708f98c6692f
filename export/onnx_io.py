"""Checking a saved ONNX file, with every failure a one-line UserError."""
from __future__ import annotations

from pathlib import Path

from siammask.errors import UserError, first_line


def check_graph(path: Path) -> None:
    """onnx.checker on the saved file (full check, with shape inference)."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise UserError(f"'{path}' fails onnx.checker: {first_line(exc)}") from None
