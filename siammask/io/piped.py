"""A file that a library writes through a named pipe, so that its write errors reach Python.

OpenCV's video writer only logs a write that fails (a full disk): the bytes are gone and the
caller never learns it. Handed a named pipe instead of the file, the writer (FFmpeg) writes into
the pipe and a thread of ours copies each chunk into the real file with plain write(2) calls,
where ENOSPC or EIO is an OSError that we keep and report. The pipe's name also chooses the
container (FFmpeg guesses it from the suffix), and the pipe is gone from the filesystem as soon as
both ends are open, so a killed process leaves nothing behind. Only a streamable format fits:
the writer cannot seek in a pipe.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

CHUNK_BYTES = 1 << 16  # a pipe holds 64 KiB: one read takes what is there


class PipedFile:
    """`out`, a file descriptor open for writing (which PipedFile now owns), fed from a named pipe at `pipe`.

    Open the writer on `pipe`, then call `attached()`; `error` is the first OSError the copy met
    (from then on it reads on and drops what comes, so the writer never blocks); `close()` waits
    for the writer's end of the pipe to close (release the writer first) and the copy to finish."""

    def __init__(self, out: int, target: Path, pipe_suffix: str) -> None:
        self.target = target
        self.error: OSError | None = None
        self._out = out
        self._folder = tempfile.mkdtemp(prefix="siammask-video-")  # 0700: ours alone
        self.pipe = Path(self._folder) / f"video{pipe_suffix}"
        os.mkfifo(self.pipe, 0o600)
        # The read end first, without blocking; then an end of our own for writing, so the copy does
        # not see end-of-file before the writer has opened the pipe (attached() closes it).
        self._in = os.open(self.pipe, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(self._in, True)
        self._held = os.open(self.pipe, os.O_WRONLY | os.O_CLOEXEC)
        self._copy = threading.Thread(target=self._run, name=f"copy {target.name}", daemon=True)
        self._copy.start()

    def attached(self) -> None:
        """The writer has opened the pipe (or failed to): the name and our own write end can go."""
        if self._held is not None:
            os.close(self._held)
            self._held = None
            shutil.rmtree(self._folder, ignore_errors=True)

    def _run(self) -> None:
        while True:
            data = os.read(self._in, CHUNK_BYTES)
            if not data:
                return
            if self.error is not None:
                continue
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._out, view):]
            except OSError as error:
                self.error = error

    @property
    def closed(self) -> bool:
        return self._out is None

    def close(self) -> None:
        """Wait for the copy to take the writer's last bytes, then close the file; safe to call twice."""
        self.attached()
        if self.closed:
            return
        self._copy.join()
        os.close(self._in)
        os.close(self._out)
        self._out = None
