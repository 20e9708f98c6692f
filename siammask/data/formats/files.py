"""File-system helpers shared by the converters; every failure is a one-line UserError that
names the file."""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from ...errors import UserError
from ..layouts.images import real_dir


def require_dir(path: Path, layout: str) -> Path:
    """`path` as a folder (see real_dir), or an error that shows the layout the format expects."""
    path = real_dir(path)
    if not path.is_dir():
        raise UserError(f"{path} is not a folder; expected {layout}")
    return path


def image_size(image: Path | bytes) -> tuple[int, int]:
    """(width, height) of an image file or encoded bytes, from the header without decoding the
    pixels, for converters that must size a mask before the builder reads the image."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image) if isinstance(image, bytes) else image) as opened:
            return opened.size
    except OSError as exc:
        raise UserError(f"cannot read image {'(embedded)' if isinstance(image, bytes) else image}: {exc}") from None


def load_json(path: Path) -> Any:
    """Parse a JSON annotation file; a syntax error names the file, line and column."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: malformed JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
