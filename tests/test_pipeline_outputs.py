"""`siammask serve`'s outputs against faults (issue 23): a full disk, kill -9 of the sink, a live source
that changes its frame size, a busy publish port, a corrupt image in a folder, a JSON-lines pipe
nobody reads. Real serve processes, a real tmpfs that fills up, real named pipes; each test runs a
pipeline of its own."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from siammask.synthetic import make_sequence, write_image_folder, write_video

from disk_support import small_disk
from pipeline_support import (ANY_PORT, ENV, START_TIMEOUT_S, Serve, Subscriber, check_accounting, eventually,
                              free_port)

BOX = [25.0, 19.0, 26.0, 19.0]  # the synthetic object on frame 0 (seed 3, 160x120)
pytestmark = pytest.mark.slow   # every test runs serve's processes


def config(source: Path, lite: Path, loop: bool = True, **extra) -> dict:
    return {"streams": [{"id": "a", "source": str(source), "loop": loop, "fps": 25.0, "boxes": [BOX]}],
            "model": {"weights": str(lite), "threads": 1}, "publish": ANY_PORT,
            "metrics_port": free_port(), "log_interval_s": 0, **extra}


def finish(serve: Serve, timeout_s: float = START_TIMEOUT_S) -> int:
    """serve's exit status once it stops by itself (killed, and the test failed, if it does not)."""
    try:
        return serve.proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        serve.kill()
        raise AssertionError(f"serve did not stop within {timeout_s} s:\n{serve.log()}") from None
    finally:
        if not serve._log.closed:
            serve._close()


def frames_in(video: Path) -> list[tuple[int, int]]:
    """(width, height) of every frame OpenCV decodes."""
    capture = cv2.VideoCapture(str(video))
    sizes = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        sizes.append((image.shape[1], image.shape[0]))
    capture.release()
    return sizes


def ffprobe_frames(video: Path) -> int | None:
    """Frames ffprobe decodes (None without ffprobe)."""
    if shutil.which("ffprobe") is None:
        return None
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                          "stream=nb_read_frames", "-of", "csv=p=0", str(video)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


# --- a full disk -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, size, message", [
    ("out.avi", "2m", "cannot write video '{path}': No space left on device; free space"),
    ("out.mp4", "256k", "cannot write video '{path}': No space left on device; free space"),
    ("out.jsonl", "64k", "cannot write results '{path}': No space left on device"),
])
def test_a_full_disk_stops_serve_with_one_line(tmp_path, synthetic_video, lite, name, size, message):
    """Before, the video writer's failures went unchecked: serve went on, the video unreadable; then a
    check of the room left stopped it ('under 1 MiB free'). Now the write that fails does: a video's
    bytes go through a pipe of ours (siammask/io/piped.py)."""
    output = "jsonl" if name.endswith(".jsonl") else "video"
    with small_disk(tmp_path / "disk", size) as disk:
        path = disk / name
        serve = Serve(tmp_path, config(synthetic_video, lite, outputs={output: str(path)}))
        code = finish(serve)
        log = serve.log()
        if output == "jsonl":
            text = path.read_text()
            assert text.endswith("\n") and all(json.loads(line) for line in text.splitlines())
        else:
            assert len(frames_in(path)) > 20  # what was written before the disk filled stays readable
    assert code == 2, log
    assert [line for line in log.splitlines() if "No space left" in line] == [
        next(line for line in log.splitlines() if message.format(path=path) in line)], log
    assert "the sink stage cannot run" in log and "Traceback" not in log


def test_track_on_a_full_disk_is_one_line_and_exit_2(tmp_path, lite):
    long = write_video(make_sequence(num_frames=400, size=(160, 120), seed=3), tmp_path / "long.avi")
    with small_disk(tmp_path / "disk", "1m") as disk:
        proc = subprocess.run([sys.executable, "-m", "siammask.cli", "track", str(long), "--box", "25,19,26,19",
                               "--weights", str(lite), "--engine", "torch", "--output", str(disk / "out.avi"),
                               "--quiet"], capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [f"siammask: error: cannot write video '{disk / 'out.avi'}': No space left on "
                                        "device; free space or pick another path"]


# --- kill -9 of the sink ---------------------------------------------------------------------------------

def kill_the_sink_midway(tmp_path: Path, video: Path, lite: Path, name: str) -> tuple[Serve, Path, Path]:
    """A serve writing video `name`, its sink killed with SIGKILL once 400 kB are on disk, stopped
    when the restarted sink has written 200 kB of its own part: (serve, killed part, next part)."""
    first, second = tmp_path / name, tmp_path / name.replace(".", ".part1.")
    serve = Serve(tmp_path, config(video, lite, outputs={"video": str(first)}))
    try:
        eventually(lambda: first.exists() and first.stat().st_size > 400_000, START_TIMEOUT_S, "400 kB of video",
                   serve)
        os.kill(serve.ctl({"cmd": "list"})["processes"]["sink"], signal.SIGKILL)
        eventually(lambda: second.exists() and second.stat().st_size > 200_000, START_TIMEOUT_S, "a second part",
                   serve)
        assert serve.stop() == 0, serve.log()
    finally:
        if serve.proc.poll() is None:
            serve.kill()
    assert "sink was killed by signal 9" in serve.log()
    return serve, first, second


@pytest.mark.parametrize("name", ["out.avi", "out.mp4"])
def test_every_video_part_is_readable_after_kill_9_of_the_sink(tmp_path, synthetic_video, lite, name):
    """The killed sink's part plays up to its last frame on disk (OpenCV and ffprobe), and the
    restarted sink's part is complete. MJPG .avi held before; an .mp4 part had no index (no moov
    atom: no frame readable, checked at 999335d) until .mp4 became fragmented MP4. The restarted
    sink writes the killed .avi part's index and frame counts, which its header then states."""
    serve, killed, second = kill_the_sink_midway(tmp_path, synthetic_video, lite, name)
    for path in (killed, second):
        sizes = frames_in(path)
        assert len(sizes) > 20 and set(sizes) == {(160, 120)}, (path, len(sizes))
        probed = ffprobe_frames(path)
        assert probed is None or probed >= len(sizes) - 1, (path, probed, len(sizes))
        capture = cv2.VideoCapture(str(path))
        declared = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        capture.release()
        assert declared == len(sizes), (path, declared, len(sizes))


# --- a live source that changes its frame size ------------------------------------------------------------

class PipeWriter:
    """Writes videos into a named pipe one after the other, each as a new writer (opening a pipe for
    writing waits for its reader), as a camera feed restarted at another resolution would."""

    def __init__(self, pipe: Path, videos: list[Path]) -> None:
        self.pipe, self.videos = pipe, videos
        self.proc = subprocess.Popen([sys.executable, "-c", (
            "import sys\n"
            "for video in sys.argv[2:]:\n"
            "    data = open(video, 'rb').read()\n"
            "    with open(sys.argv[1], 'wb') as out:\n"
            "        out.write(data)\n"), str(pipe), *map(str, videos)])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_a_live_source_that_changes_size_starts_a_new_video_part(tmp_path, lite):
    """320x240, then 640x480 on the same pipe: before, the sink crashed on every 640x480 frame and
    restarted again and again; now the video goes on in a new part."""
    pipe = tmp_path / "feed.pipe"
    os.mkfifo(pipe)
    small = write_video(make_sequence(num_frames=40, size=(320, 240), seed=3), tmp_path / "small.avi")
    large = write_video(make_sequence(num_frames=400, size=(640, 480), seed=3), tmp_path / "large.avi")
    video = tmp_path / "out.avi"
    serve = Serve(tmp_path, config(pipe, lite, loop=False, outputs={"video": str(video)}))
    writer = PipeWriter(pipe, [small, large])
    sub = Subscriber(serve.publish)
    try:
        got = sub.wait_for(lambda m: m.get("width") == 640 and m["frame"] > 60, START_TIMEOUT_S,
                           f"640x480 results; log:\n{serve.log()}")
        restarts = serve.metrics().get('siammask_restarts_total{stage="sink"}', 0.0)
        assert serve.stop() == 0, serve.log()
    finally:
        sub.close()
        writer.close()
        if serve.proc.poll() is None:
            serve.kill()
    assert restarts == 0, serve.log()
    assert {(m["width"], m["height"]) for m in got} == {(320, 240), (640, 480)}
    check_accounting(got)
    assert "frames are now 640x480, not 320x240; its video goes on in a new part" in serve.log()
    first, second = frames_in(video), frames_in(tmp_path / "out.part1.avi")
    assert first and set(first) == {(320, 240)}
    assert second and set(second) == {(640, 480)}


# --- start-up and input faults ------------------------------------------------------------------------------

def test_a_busy_publish_port_exits_2_at_once(tmp_path, synthetic_video, lite):
    """Before, the sink hung in ctx.term after the failed bind: serve played the whole file with no
    output and exited 0."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        serve = Serve(tmp_path, {**config(synthetic_video, lite), "publish": f"tcp://127.0.0.1:{port}"})
        code = finish(serve)
    log = serve.log()
    assert code == 2, log
    assert f"[sink]: cannot bind 'tcp://127.0.0.1:{port}': Address already in use" in log
    assert "the sink stage cannot run" in log and "Traceback" not in log


def test_a_corrupt_folder_image_is_skipped_with_one_warning(tmp_path, synthetic_frames, lite):
    """Before, the capture's reader thread died on it and serve never ended."""
    folder = write_image_folder(synthetic_frames, tmp_path / "frames")
    images = sorted(folder.iterdir())
    images[5].write_bytes(b"not an image")
    jsonl = tmp_path / "out.jsonl"
    serve = Serve(tmp_path, config(folder, lite, loop=False, outputs={"jsonl": str(jsonl)}))
    code = finish(serve)
    log = serve.log()
    assert code == 0, log
    warnings = [line for line in log.splitlines() if "frame skipped" in line]
    assert len(warnings) == 1 and f"cannot decode image '{images[5]}'" in warnings[0], log
    msgs = [json.loads(line) for line in jsonl.read_text().splitlines()]
    frames = [m["frame"] for m in msgs]
    assert 5 not in frames and frames[0] == 0 and frames[-1] == len(images) - 1, frames
    check_accounting(msgs)  # the skipped image is a capture drop
    after = next(m for m in msgs if m["frame"] > 5)
    assert after["dropped"]["capture"] >= 1, after


def test_json_lines_into_a_pipe_nobody_reads_exits_2(tmp_path, synthetic_video, lite):
    """Before, the sink blocked in open(2) with no message."""
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    serve = Serve(tmp_path, config(synthetic_video, lite, outputs={"jsonl": str(fifo)}))
    code = finish(serve)
    log = serve.log()
    assert code == 2, log
    assert f"cannot write results '{fifo}': no program opened the named pipe for reading within 10 s" in log
