"""Tracking outputs: per-frame JSON lines, mask PNGs and the annotated video.

Every writer is a context manager that leaves a complete, readable file behind when the
with-block ends, including on Ctrl-C, so a long live run can be stopped at any time.
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import stat
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from siammask.errors import UserError

from .avi import finish_streamed_avi
from .piped import PipedFile

if TYPE_CHECKING:
    from siammask.tracker import TrackResult

log = logging.getLogger(__name__)
# suffix -> (fourcc, the suffix of the pipe FFmpeg writes into, which picks its muxer: see VideoWriter)
_FORMATS = {".mp4": ("mp4v", ".ismv"), ".avi": ("MJPG", ".avi")}
PIPE_READER_WAIT_S = 10.0   # how long an output that is a named pipe waits for its reader


def encode_mask(mask: np.ndarray) -> dict:
    """HxW mask -> COCO RLE with str counts, so the record stays JSON-serialisable."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (HxW), got shape {mask.shape}")
    binary = mask if mask.dtype == bool else mask != 0
    rle = mask_utils.encode(np.asfortranarray(binary, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: dict) -> np.ndarray:
    """COCO RLE (str or bytes counts) -> HxW bool mask; the inverse of encode_mask."""
    counts = rle["counts"]
    coded = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(coded).astype(bool)


def frame_record(
    frame: int,
    box: Sequence[float],
    polygon: Sequence[float] | np.ndarray,
    score: float,
    lost: bool,
    mask: np.ndarray | None,
    **extra: Any,
) -> dict:
    """One frame's result as plain Python types, ready for json.dumps (box kept at full precision)."""
    box_values = _floats(box, 4, "box")
    polygon_values = _floats(polygon, 8, "polygon")
    record = {
        "frame": int(frame),
        "box": box_values,
        "polygon": polygon_values,
        "score": float(score),
        "lost": bool(lost),
        "mask": None if mask is None else encode_mask(mask),
    }
    record.update({key: _plain(value) for key, value in extra.items()})
    return record


def result_record(frame: int, result: "TrackResult", **extra: Any) -> dict:
    """One target's TrackResult on one frame as its JSON record (`siammask track --json`, serve's
    results): the frame_record fields plus `presence` and `found` (re-acquired on this frame)."""
    return frame_record(frame, result.box, result.polygon, result.score, result.lost, result.mask,
                        presence=float(result.presence), found=bool(result.found), **extra)


def _floats(values: Sequence[float] | np.ndarray, count: int, name: str) -> list[float]:
    """Flatten to exactly `count` Python floats (a 4x2 polygon becomes 8 values)."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if flat.size != count:
        raise ValueError(f"{name} must have {count} numbers, got {flat.size}")
    return [float(v) for v in flat]


def _plain(value: Any) -> Any:
    """numpy scalars/arrays -> Python values, because json cannot serialise them."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return value


def check_output_folder(path: str | Path, what: str) -> None:
    """Fail early with a readable message instead of a cv2/OS error mid-run; creates nothing."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"cannot write {what} '{path}': folder '{folder}' does not exist; create it or pick another path")


def open_output(path: Path, append: bool = False) -> int:
    """A file descriptor for writing (created 0644 or truncated; or appended to). A named pipe opens
    only once a program reads it (open(2) would block forever): its reader gets PIPE_READER_WAIT_S,
    else TimeoutError, an OSError saying so."""
    if not path.is_fifo():
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append else os.O_TRUNC), 0o644)
    deadline = time.monotonic() + PIPE_READER_WAIT_S
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            break
        except OSError as error:
            if error.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(errno.ETIMEDOUT, f"no program opened the named pipe for reading within "
                                                f"{PIPE_READER_WAIT_S:g} s")
        time.sleep(0.1)
    os.set_blocking(fd, True)
    return fd


class JsonlWriter:
    """Writes one JSON record per line, each with a single write(2) straight to the file (no buffer),
    so an interruption, even kill -9, keeps every finished line and never leaves half of one.

    `append` continues an existing file (a restarted pipeline sink): nothing written before is lost.
    A full disk or a failing device is a UserError, raised once."""

    def __init__(self, path: str | Path, append: bool = False) -> None:
        self.path = Path(path)
        check_output_folder(self.path, "results")
        try:
            self._file = open(open_output(self.path, append), "ab" if append else "wb", buffering=0)
        except OSError as error:
            raise UserError(f"cannot write results '{self.path}': {error.strerror}; pick a writable path") from error
        # a half line can be cut off a regular file, not a pipe's or a device's
        self._regular = stat.S_ISREG(os.fstat(self._file.fileno()).st_mode)
        self.count = 0

    def write(self, record: dict) -> None:
        """Append one record as a single line (NaN is refused: it is not JSON)."""
        self.write_line(json.dumps(record, allow_nan=False))

    def write_line(self, text: str) -> None:
        """Append a record already encoded as JSON (no newline inside), e.g. what was just published.
        A line the disk took only part of is cut off again, so the file ends with a complete line."""
        data = (text + "\n").encode("utf-8")
        start = self._file.tell() if self._regular else None
        try:
            written = self._file.write(data)
            while written < len(data):  # a full disk takes part of a line, then fails
                written += self._file.write(data[written:])
        except OSError as error:
            if start is not None:
                self._file.truncate(start)
            raise UserError(f"cannot write results '{self.path}': {error.strerror}; free space or pick another "
                            "path") from None
        self.count += 1

    def close(self) -> None:
        """Close the file; safe to call twice."""
        self._file.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def make_output_folder(folder: str | Path, what: str) -> Path:
    """Create an output folder (and its parents): a path that cannot be one (a file, /proc/...) is a
    UserError naming it, not an OSError from deep inside a run."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"cannot create {what} folder '{folder}': a file has that name; pick another path") from None
    except OSError as error:
        raise UserError(f"cannot create {what} folder '{folder}': {error.strerror}; pick a writable path") from None
    return folder


class MaskDirWriter:
    """Writes each frame's mask as NNNNN.png (0/255, single channel) into a folder it creates."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = make_output_folder(folder, "mask")
        self.count = 0

    def path_for(self, frame_index: int) -> Path:
        """Where the mask of `frame_index` goes (5-digit zero-padded name)."""
        return self.folder / f"{int(frame_index):05d}.png"

    def write(self, frame_index: int, mask: np.ndarray) -> Path:
        """Save one mask; cv2 reports failure only by return value, so check it."""
        if frame_index < 0:
            raise ValueError(f"frame_index must be >= 0, got {frame_index}")
        path = self.path_for(frame_index)
        image = np.where(np.asarray(mask).astype(bool), 255, 0).astype(np.uint8)
        if not cv2.imwrite(str(path), image):
            raise UserError(f"could not write mask '{path}'; check the folder is writable and the disk not full")
        self.count += 1
        return path

    def __enter__(self) -> MaskDirWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


MAX_PARTS = 100_000


def _parts(path: Path) -> Iterator[Path]:
    """NAME.part1.EXT, NAME.part2.EXT, ... next to `path`."""
    return (path.with_name(f"{path.stem}.part{n}{path.suffix}") for n in range(1, MAX_PARTS))


def next_part(path: str | Path) -> Path:
    """The first of NAME.part1.EXT, NAME.part2.EXT, ... that does not exist: where a restarted writer
    goes on, so the file it was writing before is never truncated."""
    path = Path(path)
    for part in _parts(path):
        if not part.exists():
            return part
    raise UserError(f"cannot find a free part name next to '{path}'; clean up its .partN files")


def finish_killed_parts(path: str | Path) -> None:
    """A writer killed mid-part left it playable but, for an .avi, without its index and frame
    counts (see VideoWriter): write them into every part of `path` that lacks them (a finished part
    is left as it is; an .mp4 part needs nothing). A part that cannot be finished stays as it is."""
    path = Path(path)
    if path.suffix.lower() != ".avi":
        return
    for part in itertools.chain([path], _parts(path)):
        if not part.exists():
            return
        try:
            finish_streamed_avi(part)
        except OSError as error:
            log.warning("could not finish video part '%s': %s", part, error.strerror)


class VideoWriter:
    """cv2.VideoWriter that opens on the first frame (its size is unknown before) and always releases.

    FFmpeg (through OpenCV) writes the video into a pipe and a thread of ours copies it into the
    file (see PipedFile): OpenCV only logs a write that fails, ours is an OSError, reported as a
    UserError at the next frame or at release, as JsonlWriter does. Through a pipe FFmpeg cannot
    seek back, so both formats are written as streams, which stay playable up to their last frame
    on disk when the process is killed (kill -9, a crash, power loss):
    - `.mp4` is a fragmented MP4 (ISO BMFF; FFmpeg's ISMV muxer, brand `isml`: an empty index at the
      start, then the frames a group of pictures at a time, each with its own index);
    - `.avi` is MJPG (each frame a JPEG of its own); at release its index and frame counts, which
      a stream lacks, are written (finish_streamed_avi)."""

    def __init__(self, path: str | Path, fps: float = 30.0) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _FORMATS:
            known = ", ".join(_FORMATS)
            raise UserError(f"unsupported video extension '{self.path.suffix}' for '{self.path}'; use one of {known}")
        if not fps > 0:
            raise UserError(f"video fps must be positive, got {fps}; pass a positive --fps")
        check_output_folder(self.path, "video")
        self.fps = float(fps)
        self.fourcc, self._muxer = _FORMATS[suffix]
        self.count = 0
        self._size: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None
        self._piped: PipedFile | None = None
        self._failed = False  # a failed write was reported: release does not report it again

    def write(self, frame: np.ndarray) -> None:
        """Append one HxWx3 uint8 BGR frame; every frame must have the first frame's size."""
        height, width = frame.shape[:2]
        if self._writer is None:
            self._open((width, height))
        if (width, height) != self._size:
            raise ValueError(f"frame size {width}x{height} differs from the video's {self._size[0]}x{self._size[1]}")
        self._writer.write(np.ascontiguousarray(frame, dtype=np.uint8))
        self.count += 1
        self._check(self._piped.error)

    def _check(self, error: OSError | None) -> None:
        if error is not None and not self._failed:
            self._failed = True
            raise UserError(f"cannot write video '{self.path}': {error.strerror}; free space or pick another path")

    @property
    def size(self) -> tuple[int, int] | None:
        """(width, height) of its frames; None before the first."""
        return self._size

    def _open(self, size: tuple[int, int]) -> None:
        try:
            self._piped = PipedFile(open_output(self.path), self.path, self._muxer)
        except OSError as error:
            raise UserError(f"cannot open video '{self.path}' for writing: {error.strerror}; check the folder is "
                            "writable") from None
        writer = cv2.VideoWriter(str(self._piped.pipe), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, size)
        self._piped.attached()
        if not writer.isOpened():
            self.release()
            if self.path.is_file():
                self.path.unlink()  # made empty for the copy (a named pipe stays)
            raise UserError(f"cannot open video '{self.path}' for writing; check the folder is writable")
        self._writer, self._size = writer, size

    def release(self) -> None:
        """Finish the file (the .mp4's last fragment, the .avi's index); safe to call twice. A write
        that failed and was not reported yet is a UserError."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._piped is None or self._piped.closed:
            return
        self._piped.close()
        self._check(self._piped.error)
        if self.fourcc == "MJPG" and not self._failed and self.path.is_file():  # a pipe's reader has had it all
            try:
                finish_streamed_avi(self.path)
            except OSError as error:
                self._check(error)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
