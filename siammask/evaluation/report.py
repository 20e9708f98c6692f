"""The written results: results.json, results.md (Markdown table) and per-sequence record files.

Non-finite numbers become JSON null (strict JSON has no NaN) and '–' in the table; a text metric
(the long-term re-acquisition delays) is shown as it is.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Column:
    """One metric column of the table: its key in a record's metrics and its header."""

    key: str
    header: str
    digits: int = 3


def plain(value: Any) -> Any:
    """A JSON-ready copy: NaN and infinities as None, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, data: Any) -> None:
    """Write through a temporary file, so an interrupted run never leaves half a file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(plain(data), indent=1, allow_nan=False))
    os.replace(tmp, path)


def markdown_table(records: list[dict], summary: dict, columns: tuple[Column, ...]) -> str:
    """One row per sequence and a bold overall row, metrics first, then frames, ms per step and fps."""
    header = ["sequence", *(c.header for c in columns), "frames", "ms/step (median)", "fps"]
    rows = [[r["name"], *(_number(r["metrics"].get(c.key), c.digits) for c in columns),
             str(r["frames"]), _number(r["speed"]["step_ms_median"], 1), _number(r["speed"]["fps"], 1)]
            for r in records]
    rows.append(["**overall**", *(f"**{_number(summary.get(c.key), c.digits)}**" for c in columns),
                 str(summary["frames"]), _number(summary["step_ms_median"], 1), _number(summary["fps"], 1)])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def _number(value: float | int | str | None, digits: int) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
