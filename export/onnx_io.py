"""Checking a saved ONNX file, with every failure a one-line UserError."""
from __future__ import annotations

from pathlib import Path

from siammask.errors import UserError


def check_graph(path: Path) -> None:
    """onnx.checker on the saved file (full check, with shape inference)."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"'{path}' fails onnx.checker: {first[:200]}") from None
