"""Frame sources: video files, image folders, cameras and network streams behind one iterator.

Every way a source can be wrong (missing, empty, undecodable, unreachable) ends in a
`UserError` with a one-line fix, so the CLI never shows a traceback for a bad input.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import sys
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from siammask.errors import UserError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp"})  # the one image suffix set
URL_SCHEMES = ("rtsp", "rtsps", "http", "https")
_SPEC_HELP = "pass an existing video file, image folder, named pipe, camera index or rtsp:// URL"
WRITER_POLL_MS = 100  # how often the wait for a pipe's writer lets signal handlers (Ctrl-C) run
# A file's header count is an index or an estimate (duration x rate), and containers often declare
# a frame more than FFmpeg decodes (1,700 declared, 1,699 read): a file ending early is reported as
# truncated only when more than 1% of its declared frames, and more than one, are missing.
TRUNCATED_FRACTION = 0.01
log = logging.getLogger(__name__)
_warned_truncated: set[str] = set()  # sources already reported: a looping stream reopens its file


class FrameSource(ABC):
    """A finite or live sequence of BGR uint8 HxWx3 frames; close it (or use `with`) when done."""

    name: str
    fps: float | None
    frame_size: tuple[int, int]  # width, height of the first frame (read when the source opens)
    skipped: int = 0             # frames left out because they could not be read (see ImageFolderSource)
    total: int | None = None     # frames a file's header or a folder's listing promises; None when live

    @abstractmethod
    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield frames in order."""

    @abstractmethod
    def close(self) -> None:
        """Release the file handle, camera or network connection."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class CaptureSource(FrameSource):
    """A video file, camera or stream read through cv2.VideoCapture.

    The first frame is read when the source is opened, so an undecodable file or a
    silent stream fails at `open_source` rather than halfway through a run. Capture
    is single pass: iterating again continues where the last iteration stopped.
    """

    def __init__(self, capture: cv2.VideoCapture, name: str, first: np.ndarray, declared: int | None = None,
                 fd: int | None = None) -> None:
        self._capture = capture
        self._pending: np.ndarray | None = first
        self.total = declared      # frames a file's header promises; None for live sources
        self._fd = fd              # a pipe's descriptor, which FFmpeg reads but does not close
        self.name = name
        self.frame_size = (first.shape[1], first.shape[0])
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps > 0 else None

    def __iter__(self) -> Iterator[np.ndarray]:
        read = 0
        if self._pending is not None:
            frame, self._pending = self._pending, None
            read += 1
            yield frame
        while self._capture.isOpened():
            ok, frame = self._capture.read()
            if not ok:  # end of file, or a stream that stopped: both just end the sequence
                self._check_complete(read)
                return
            read += 1
            yield _to_bgr(frame)

    def _check_complete(self, read: int) -> None:
        """Warn, once per source per process, when a file ended clearly short of its header's count."""
        missing = (self.total or 0) - read
        if missing > max(1, TRUNCATED_FRACTION * (self.total or 0)) and self.name not in _warned_truncated:
            _warned_truncated.add(self.name)
            log.warning("%s ended after %d of the %d frames its header declares; the file is probably "
                        "truncated", self.name, read, self.total)

    def close(self) -> None:
        self._pending = None
        self._capture.release()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class ImageFolderSource(FrameSource):
    """A folder of jpg/jpeg/png/bmp images taken as frames in natural file-name order.

    A file that does not decode, or whose size differs from the first frame, raises
    `UserError` naming it: silently skipping a frame would shift every later result. With
    `skip_unreadable` (a live pipeline, which must go on) it is a warning instead, the frame is left
    out and counted in `skipped`.
    """

    def __init__(self, folder: Path, files: list[Path], skip_unreadable: bool = False) -> None:
        self._files = files
        self.total = len(files)
        self._skip_unreadable = skip_unreadable
        self.skipped = 0
        self._shape: tuple[int, ...] = _read_image(files[0]).shape
        self.frame_size = (self._shape[1], self._shape[0])
        self.name = f"image folder '{folder}' ({len(files)} images)"
        self.fps = None

    def __iter__(self) -> Iterator[np.ndarray]:
        for path in self._files:
            try:
                yield self._read(path)
            except UserError as err:
                if not self._skip_unreadable:
                    raise
                self.skipped += 1
                log.warning("frame skipped: %s", err)

    def _read(self, path: Path) -> np.ndarray:
        image = _read_image(path)
        if image.shape != self._shape:
            raise UserError(
                f"image '{path}' is {_size(image.shape)} but the first frame is "
                f"{_size(self._shape)}; make every image in the folder the same size"
            )
        return image

    def close(self) -> None:
        """Nothing stays open between frames."""

    def __len__(self) -> int:
        return len(self._files)


def open_source(spec: str, *, open_timeout_s: float = 10.0, read_timeout_s: float = 10.0,
                skip_unreadable: bool = False) -> FrameSource:
    """Open a video file, image folder, camera index ("0") or rtsp/http(s) URL as a FrameSource.

    The timeouts apply to cameras and URLs, so a dead stream raises `UserError` instead of hanging.
    `skip_unreadable`: a folder's corrupt image is a warning and left out (see ImageFolderSource).
    """
    spec = spec.strip()
    if not spec:
        raise UserError(f"no video source given; {_SPEC_HELP}")
    path = Path(spec).expanduser()
    if path.is_dir():
        return _open_folder(path, skip_unreadable)
    if path.is_file():
        return _open_video(path)
    timeouts = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _msec(open_timeout_s),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC, _msec(read_timeout_s),
    ]  # fmt: skip
    if path.is_fifo():
        return _open_pipe(path, timeouts)
    if spec.isdigit():
        return _open_camera(int(spec), timeouts)
    if "://" in spec:
        return _open_url(spec, timeouts)
    raise UserError(f"cannot open video '{spec}': file not found; {_SPEC_HELP}")


def first_frame_size(spec: str) -> tuple[int, int]:
    """(width, height) of a file's or folder's first frame, to check boxes before anything starts."""
    with open_source(spec) as source:
        return source.frame_size


def _open_folder(folder: Path, skip_unreadable: bool) -> ImageFolderSource:
    try:
        entries = list(folder.iterdir())
    except OSError as err:
        raise UserError(f"cannot list image folder '{folder}': {err.strerror}; check its permissions") from err
    files = sorted(
        (p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()),
        key=_natural_key,
    )
    if not files:
        raise UserError(
            f"image folder '{folder}' has no .jpg, .jpeg, .png, .bmp or .webp images; "
            "pass a folder of frames or a video file"
        )
    return ImageFolderSource(folder, files, skip_unreadable)


def _open_video(path: Path) -> CaptureSource:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    name = f"video '{path}'"
    if not capture.isOpened():
        raise UserError(
            f"cannot open {name}: not a readable video file; pass a video FFmpeg can decode or an image folder"
        )
    declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    return _start(capture, name, f"cannot read {name}: no frame could be decoded; re-encode it or pass an image folder",
                  declared=declared if declared > 0 else None)


def _open_camera(index: int, timeouts: list[int]) -> CaptureSource:
    capture = cv2.VideoCapture(index, cv2.CAP_ANY, timeouts)
    name = f"camera {index}"
    if not capture.isOpened():
        raise UserError(f"cannot open {name}: no such camera or it is in use; check the index (0 is the first camera)")
    return _start(capture, name, f"{name} opened but sent no frame; check that it is not in use by another program")


def _open_pipe(path: Path, timeouts: list[int]) -> CaptureSource:
    """A named pipe that another program (ffmpeg, gstreamer) writes a stream into. We wait for its
    writer ourselves, in Python (OpenCV would wait inside open(2), where Ctrl-C cannot reach), then
    hand FFmpeg the open descriptor; the timeouts do not cover the wait (the pipeline's stall
    watchdog does)."""
    name = f"pipe '{path}'"
    fd = _wait_for_writer(path, name)
    try:
        capture = cv2.VideoCapture(f"pipe:{fd}", cv2.CAP_FFMPEG, timeouts)
        if not capture.isOpened():
            raise UserError(f"cannot open {name}: not a stream FFmpeg can decode; check what its writer sends")
        source = _start(capture, name, f"{name} opened but sent no frame before the read timeout; check its writer",
                        fd=fd)
    except BaseException:
        os.close(fd)
        raise
    return source


def _wait_for_writer(path: Path, name: str) -> int:
    """A blocking read descriptor of the pipe once its writer has sent something."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # returns at once, writer or not
    except OSError as err:
        raise UserError(f"cannot open {name}: {err.strerror}; check its permissions") from err
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while not (events := poller.poll(WRITER_POLL_MS)):
            pass
        if not events[0][1] & select.POLLIN:
            raise UserError(f"the writer of {name} closed it without sending anything; start it again")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_url(url: str, timeouts: list[int]) -> CaptureSource:
    shown = _redact(url)
    scheme = url.split("://", 1)[0].lower()
    if scheme not in URL_SCHEMES:
        supported = ", ".join(f"{s}://" for s in URL_SCHEMES)
        raise UserError(f"cannot open stream '{shown}': unsupported scheme '{scheme}://'; use one of {supported}")
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, timeouts)
    name = f"stream '{shown}'"
    if not capture.isOpened():
        raise UserError(
            f"cannot open {name}: unreachable, refused or timed out; "
            "check the URL, the network and that the stream is live"
        )
    return _start(capture, name, f"{name} opened but sent no frame before the read timeout; check that it is live")


def _start(capture: cv2.VideoCapture, name: str, no_frame_message: str, declared: int | None = None,
           fd: int | None = None) -> CaptureSource:
    """Read the first frame now so that a source that yields nothing fails at open time."""
    ok, frame = capture.read()
    if not ok or frame is None:
        capture.release()
        raise UserError(no_frame_message)
    return CaptureSource(capture, name, _to_bgr(frame), declared, fd)


def _read_image(path: Path) -> np.ndarray:
    """Decode via imdecode so non-ASCII paths work; IMREAD_COLOR gives BGR for gray and RGBA files too."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise UserError(f"cannot read image '{path}': {err.strerror}; check that the file is readable") from err
    with _native_stderr_silenced():  # libpng/libjpeg print their own complaints; ours follows
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise UserError(f"cannot decode image '{path}': corrupt or not an image; fix or remove the file")
    return image


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null while native code runs: C libraries write there
    directly, past Python's sys.stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _to_bgr(frame: np.ndarray) -> np.ndarray:
    """Back ends may hand out gray or BGRA frames when RGB conversion is off; the tracker wants BGR."""
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def _natural_key(path: Path) -> list[int | str]:
    """Sort frame_2 before frame_10, as people number frames without zero padding."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _redact(url: str) -> str:
    """Hide a password in a URL before it reaches logs or error messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def _msec(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]}"
