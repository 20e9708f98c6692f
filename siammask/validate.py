"""The checks every value from outside passes before it reaches the tracker or the pipeline: boxes
(command line, control socket, config files) and JSON requests. One rule set, so `track`,
`serve --box` and `siammask ctl` accept and refuse exactly the same things.

Each check raises UserError with one line that says what was wrong and what to give instead."""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from .errors import UserError

Box = tuple[float, float, float, float]
MIN_BOX_SIDE = 2.0         # px: below this the crop and mask geometry degenerate (a 0.01 px box divides by 0)
MAX_BOX_FRAMES = 1.0       # a box side may be at most this many frame sides (the tracker clamps to 1 anyway)
MAX_JSON_BYTES = 64 * 1024  # a control request; a real one is well under 1 KiB
MAX_JSON_DEPTH = 8          # nesting of a control request; add_stream needs 3 (request, stream, boxes)
MAX_WAIT_S = 86400.0        # the longest wait a command takes (a day): beyond it, a typo


def box_values(values: Sequence[Any], what: str = "box", shown: str | None = None) -> Box:
    """Four finite real numbers x, y, w, h with w and h at least MIN_BOX_SIDE pixels. `shown` is
    how the box appears in messages (default: its numbers)."""
    if isinstance(values, (str, bytes)) or len(values) != 4 or not all(_is_number(v) for v in values):
        raise UserError(f"{what} {shown or shorten(values)} must be 4 numbers: x, y, w, h")
    try:
        x, y, w, h = (float(v) for v in values)
    except OverflowError:  # an int too large for a float
        x = y = w = h = math.inf
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise UserError(f"{what} {shown or shorten(values)} has a non-finite value; give x,y,w,h in pixels")
    shown = shown or f"{x:g},{y:g},{w:g},{h:g}"
    if w <= 0 or h <= 0:
        raise UserError(f"{what} {shown} has zero or negative size; width and height must be > 0")
    if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        raise UserError(f"{what} {shown} is smaller than {MIN_BOX_SIDE:g} px on a side; "
                        "draw the box around the whole target")
    return x, y, w, h


def box_in_frame(box: Sequence[Any], frame_wh: tuple[int, int], what: str = "box") -> Box:
    """box_values, and the box overlaps the frame and is at most MAX_BOX_FRAMES frames wide and high."""
    x, y, w, h = box_values(box, what)
    fw, fh = frame_wh
    if x >= fw or y >= fh or x + w <= 0 or y + h <= 0:
        raise UserError(f"{what} {x:g},{y:g},{w:g},{h:g} lies outside the {fw}x{fh} frame; "
                        "give x,y,w,h of the target in the frame it starts on")
    if w > MAX_BOX_FRAMES * fw or h > MAX_BOX_FRAMES * fh:
        raise UserError(f"{what} {x:g},{y:g},{w:g},{h:g} is larger than the {fw}x{fh} frame; "
                        "give x,y,w,h of the target in the frame it starts on")
    return x, y, w, h


def box_text(text: str, what: str = "box") -> Box:
    """'X,Y,W,H' as typed on a command line; the argparse type of every --box. Its UserError passes
    through argparse (which catches only ValueError and TypeError): one line and exit 2, no usage block."""
    parts = text.replace(" ", "").split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise UserError(f"{what} {shorten(text)} is not X,Y,W,H (four numbers separated by commas)")
    return box_values(values, what, shorten(text))


def seconds_text(text: str, what: str, most: float = MAX_WAIT_S) -> float:
    """A wait in seconds as typed on a command line: a finite number in (0, most]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= most:  # NaN fails both
        raise UserError(f"{what} {shorten(text)} must be a number of seconds in (0, {most:g}]")
    return value


def json_object(raw: bytes, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """A JSON object of at most `max_bytes` and `max_depth` levels, without NaN or Infinity: the
    size and depth are checked before parsing, so no input can exhaust memory or the stack."""
    if len(raw) > max_bytes:
        raise UserError(f"request of {len(raw)} bytes is over the limit of {max_bytes}")
    if _nests_deeper(raw, max_depth):
        raise UserError(f"request nests deeper than {max_depth} levels")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):  # JSONDecodeError is a ValueError; so are huge ints
        raise UserError("request is not JSON; send an object like {\"cmd\": \"list\"}") from None
    if not isinstance(data, dict):
        raise UserError("request must be a JSON object with a string 'cmd'")
    return data


def _nests_deeper(raw: bytes, limit: int) -> bool:
    """Whether brackets outside strings nest deeper than `limit`: one linear pass, no parsing."""
    depth, in_string, escaped = 0, False, False
    for char in raw:
        if in_string:
            if escaped:
                escaped = False
            elif char == 0x5C:  # backslash
                escaped = True
            elif char == 0x22:  # quote
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in b"[{":
            depth += 1
            if depth > limit:
                return True
        elif char in b"]}":
            depth -= 1
    return False


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def shorten(value: Any, limit: int = 60) -> str:
    """repr(value) cut short for an error message: a 400-digit number makes a poor one."""
    try:
        text = repr(list(value) if isinstance(value, tuple) else value)
    except ValueError:  # an int with more digits than Python prints
        return "(a number too long to show)"
    return text if len(text) <= limit else text[:limit] + "..."


def frame_span(start: int, length: int, frames: int) -> range:
    """Frames START..START+LENGTH-1, numbered from 1 as image files and ground-truth lines are, inside
    a sequence of `frames` frames and after its first frame (where a tracker starts); returned as
    0-based indices."""
    if length < 1:
        raise UserError(f"--length {length} must be at least 1")
    if start < 2 or start + length - 1 > frames:
        raise UserError(f"--start {start} --length {length} is not inside frames 2..{frames} of the sequence "
                        "(frame 1 must show the target)")
    return range(start - 1, start - 1 + length)
