"""Outputs of `siammask track`: RLE masks, JSON lines, mask PNGs, annotation and video."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from siammask.errors import UserError
from siammask.io.annotate import LOST_COLOR, annotate, draw_target, target_color
from siammask.io.avi import finish_streamed_avi
from siammask.io.results import (
    JsonlWriter,
    MaskDirWriter,
    VideoWriter,
    decode_mask,
    encode_mask,
    frame_record,
)

from disk_support import small_disk

# pycocotools' Cython RLE objects predate numpy 2's __array__(copy=...) protocol.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _known_masks() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    single = np.zeros((7, 5), bool)
    single[3, 2] = True
    rectangle = np.zeros((40, 60), bool)
    rectangle[5:17, 20:51] = True
    return {
        "empty": np.zeros((10, 12), bool),
        "full": np.ones((9, 4), bool),
        "single": single,
        "rectangle": rectangle,
        "random": rng.random((37, 53)) > 0.5,
        "last_pixel": np.pad(np.ones((1, 1), bool), ((8, 0), (5, 0))),
    }


@pytest.mark.parametrize("name", list(_known_masks()))
def test_rle_round_trip_is_exact(name: str) -> None:
    mask = _known_masks()[name]
    rle = encode_mask(mask)
    assert rle["size"] == list(mask.shape)
    assert isinstance(rle["counts"], str)
    decoded = decode_mask(json.loads(json.dumps(rle)))
    assert decoded.dtype == bool and decoded.shape == mask.shape
    np.testing.assert_array_equal(decoded, mask)
    assert int(mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()})) == int(mask.sum())


def test_rle_accepts_uint8_and_bytes_counts() -> None:
    mask = np.zeros((6, 6), np.uint8)
    mask[1:4, 2:5] = 255
    rle = encode_mask(mask)
    np.testing.assert_array_equal(decode_mask({"size": rle["size"], "counts": rle["counts"].encode()}), mask > 0)


def test_encode_rejects_non_2d_mask() -> None:
    with pytest.raises(ValueError):
        encode_mask(np.zeros((4, 4, 3), bool))


def test_frame_record_json_round_trip_keeps_exact_floats() -> None:
    box = np.array([10.123456789012345, 20.000000000000004, 33.3, 1e-9])
    polygon = np.array([[1.5, 2.25], [3.125, 4.0], [5.0, 6.0], [7.0, 8.000000001]], np.float32)
    mask = np.zeros((8, 9), bool)
    mask[2:5, 3:7] = True
    record = frame_record(np.int64(12), box, polygon, np.float32(0.875), np.bool_(False), mask, target=np.int64(3))
    parsed = json.loads(json.dumps(record))
    assert list(parsed) == ["frame", "box", "polygon", "score", "lost", "mask", "target"]
    assert parsed["frame"] == 12
    assert parsed["box"] == [float(v) for v in box]
    assert parsed["polygon"] == [float(v) for v in polygon.reshape(-1)]
    assert parsed["score"] == 0.875
    assert parsed["lost"] is False
    assert parsed["target"] == 3
    np.testing.assert_array_equal(decode_mask(parsed["mask"]), mask)


def test_frame_record_without_mask_has_null() -> None:
    record = frame_record(0, [1, 2, 3, 4], [0, 0, 1, 0, 1, 1, 0, 1], 0.1, True, None)
    assert json.loads(json.dumps(record))["mask"] is None
    assert record["lost"] is True and all(isinstance(v, float) for v in record["box"])


def test_frame_record_rejects_wrong_sizes() -> None:
    with pytest.raises(ValueError):
        frame_record(0, [1, 2, 3], [0] * 8, 0.5, False, None)
    with pytest.raises(ValueError):
        frame_record(0, [1, 2, 3, 4], [0] * 6, 0.5, False, None)


def _record(i: int) -> dict:
    return frame_record(i, [i + 0.1, i + 0.2, 5.0, 6.0], [float(i)] * 8, 0.5, False, None)


def test_jsonl_writer_writes_parsable_lines(tmp_path) -> None:
    path = tmp_path / "out.jsonl"
    with JsonlWriter(path) as writer:
        for i in range(5):
            writer.write(_record(i))
    assert writer.count == 5
    lines = path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(json.dumps(_record(i))) for i in range(5)]


def test_jsonl_writer_lines_are_on_disk_before_close(tmp_path) -> None:
    path = tmp_path / "out.jsonl"
    with JsonlWriter(path) as writer:
        writer.write(_record(0))
        assert json.loads(path.read_text())["frame"] == 0


def test_jsonl_writer_keeps_lines_after_keyboard_interrupt(tmp_path) -> None:
    path = tmp_path / "out.jsonl"
    with pytest.raises(KeyboardInterrupt):
        with JsonlWriter(path) as writer:
            for i in range(3):
                writer.write(_record(i))
            raise KeyboardInterrupt
    text = path.read_text()
    assert text.endswith("\n")
    assert [json.loads(line)["frame"] for line in text.splitlines()] == [0, 1, 2]


def test_jsonl_writer_bad_paths_raise_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        JsonlWriter(tmp_path / "missing" / "out.jsonl")
    with pytest.raises(UserError):
        JsonlWriter(tmp_path)


def test_mask_dir_writer_round_trip(tmp_path) -> None:
    folder = tmp_path / "a" / "b" / "masks"
    masks = {i: np.random.default_rng(i).random((24, 31)) > 0.3 for i in (0, 7, 12345)}
    with MaskDirWriter(folder) as writer:
        for i, mask in masks.items():
            writer.write(i, mask)
    assert sorted(p.name for p in folder.iterdir()) == ["00000.png", "00007.png", "12345.png"]
    for i, mask in masks.items():
        image = cv2.imread(str(folder / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        assert image.dtype == np.uint8 and image.shape == mask.shape
        np.testing.assert_array_equal(image, np.where(mask, 255, 0))


def test_mask_dir_writer_errors(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError):
        MaskDirWriter(blocker)
    folder = tmp_path / "masks"
    writer = MaskDirWriter(folder)
    shutil.rmtree(folder)
    with pytest.raises(UserError, match="could not write mask"):
        writer.write(0, np.ones((4, 4), bool))


def _scene() -> tuple[np.ndarray, np.ndarray]:
    frame = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    mask = np.zeros((120, 160), bool)
    mask[40:60, 50:80] = True
    return frame, mask


def test_annotate_tints_mask_and_leaves_far_pixels() -> None:
    frame, mask = _scene()
    original = frame.copy()
    polygon = [45, 35, 85, 35, 85, 65, 45, 65]
    out = annotate(frame, polygon, mask, box=[44, 34, 42, 32], color=(0, 255, 0), label="0.93")
    np.testing.assert_array_equal(frame, original)
    assert out.shape == frame.shape and out.dtype == frame.dtype
    inner = (slice(45, 55), slice(55, 75))
    expected = np.rint(0.6 * original[inner].astype(np.float64) + 0.4 * np.array([0, 255, 0]))
    np.testing.assert_allclose(out[inner], expected, atol=1)
    assert out[inner][..., 1].astype(int).mean() > original[inner][..., 1].astype(int).mean()
    far = np.ones((120, 160), bool)
    far[10:75, 35:100] = False
    np.testing.assert_array_equal(out[far], original[far])


def test_annotate_several_targets_and_no_mask() -> None:
    frame, mask = _scene()
    other = np.zeros_like(mask)
    other[90:100, 10:20] = True
    out = annotate(frame, None, mask, color=target_color(0))
    out = annotate(out, [8, 88, 22, 88, 22, 102, 8, 102], other, color=target_color(1))
    assert not np.array_equal(out[95, 15], frame[95, 15])
    assert not np.array_equal(out[50, 60], frame[50, 60])
    lost = annotate(frame, None, None)
    np.testing.assert_array_equal(lost, frame)
    assert target_color(0) != target_color(1)
    assert len({target_color(i) for i in range(8)}) == 8


def test_a_lost_target_is_its_last_box_dashed_in_grey_with_no_mask() -> None:
    """Box x 10..30, y 30..42 on a black frame. Each side from its first corner (clockwise): 6 points
    drawn, 4 left out, ...; each point paints the 2x2 square right of and below it."""
    frame = np.zeros((56, 64, 3), np.uint8)
    mask = np.zeros((56, 64), bool)
    mask[30:43, 10:31] = True  # a mask passed with a lost target is not drawn
    polygon = [10, 30, 30, 30, 30, 42, 10, 42]
    out = draw_target(frame, 3, polygon, mask, 0.42, lost=True)
    want = np.zeros((56, 64), bool)
    want[30:32, 10:17] = want[30:32, 20:27] = want[30:32, 30:32] = True   # top, rightwards: x 10-15, 20-25, 30
    want[30:37, 30:32] = want[40:44, 30:32] = True                        # right, downwards: y 30-35, 40-42
    want[42:44, 25:32] = want[42:44, 15:22] = want[42:44, 10:12] = True   # bottom, leftwards: x 30-25, 20-15, 10
    want[37:44, 10:12] = want[30:34, 10:12] = True                        # left, upwards: y 42-37, 32-30
    box = out[30:]  # the label ends on row 29, the last above the box
    np.testing.assert_array_equal(box.any(axis=2), want[30:])
    assert LOST_COLOR == (160, 160, 160) and (box[want[30:]] == LOST_COLOR).all()
    label = out[:30]  # '3: lost' just above the box, anti-aliased grey on black
    assert label.any() and (label[..., 0] == label[..., 1]).all() and (label[..., 1] == label[..., 2]).all()
    tracked = draw_target(frame, 3, polygon, mask, 0.42, lost=False)
    assert (tracked[35, 20] == np.rint(0.4 * np.array(target_color(3)))).all()  # its mask tint, in its colour


def test_annotate_rejects_mismatched_mask() -> None:
    frame, _ = _scene()
    with pytest.raises(ValueError):
        annotate(frame, None, np.ones((10, 10), bool))


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_writer_frames_read_back(tmp_path, suffix: str) -> None:
    path = tmp_path / f"annotated{suffix}"
    frames = [np.full((48, 64, 3), 20 * i, np.uint8) for i in range(6)]
    with VideoWriter(path, fps=10) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.count == 6
    capture = cv2.VideoCapture(str(path))
    read = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        read.append(image)
    capture.release()
    assert len(read) == 6
    assert all(image.shape == (48, 64, 3) for image in read)
    assert abs(float(read[3].mean()) - 60.0) < 8


def test_video_writer_keeps_frames_after_keyboard_interrupt(tmp_path) -> None:
    path = tmp_path / "cut.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, fps=10) as writer:
            for _ in range(4):
                writer.write(np.zeros((32, 32, 3), np.uint8))
            raise KeyboardInterrupt
    capture = cv2.VideoCapture(str(path))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 4
    capture.release()


def test_video_writer_bad_outputs_raise_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        VideoWriter(tmp_path / "missing" / "out.mp4")
    with pytest.raises(UserError, match="unsupported video extension"):
        VideoWriter(tmp_path / "out.gif")
    with pytest.raises(UserError, match="fps"):
        VideoWriter(tmp_path / "out.mp4", fps=0)
    gone = tmp_path / "gone"
    gone.mkdir()
    writer = VideoWriter(gone / "out.mp4")
    gone.rmdir()
    with pytest.raises(UserError, match="cannot open video"):
        with writer:
            writer.write(np.zeros((16, 16, 3), np.uint8))
    assert writer.count == 0


def test_video_writer_rejects_size_change(tmp_path) -> None:
    with VideoWriter(tmp_path / "v.avi") as writer:
        writer.write(np.zeros((16, 16, 3), np.uint8))
        with pytest.raises(ValueError):
            writer.write(np.zeros((16, 32, 3), np.uint8))


# --- a full disk ------------------------------------------------------------------------------------------

def test_jsonl_writer_on_a_full_disk_keeps_only_complete_lines(tmp_path) -> None:
    """The disk takes part of the last line, then fails: that part is cut off again (it stayed in
    the file), so every line left parses and the count is what was written."""
    record = {"frame": 0, "pad": "x" * 1000}  # 1,000-odd bytes: lines straddle the tmpfs's 4 KiB pages
    with small_disk(tmp_path / "disk", "64k") as disk:
        with JsonlWriter(disk / "out.jsonl") as writer:
            with pytest.raises(UserError, match="cannot write results .*No space left on device"):
                for frame in range(1000):
                    writer.write({**record, "frame": frame})
        text = (disk / "out.jsonl").read_bytes().decode()
    assert writer.count > 40  # most of the 64 KiB was used
    assert text.endswith("\n"), text[-80:]
    assert [json.loads(line)["frame"] for line in text.splitlines()] == list(range(writer.count))


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_writer_on_a_full_disk_raises_user_error(tmp_path, suffix: str) -> None:
    """OpenCV only logs a failed write; the writer sees it fail (ENOSPC) and says so, once."""
    rng = np.random.default_rng(0)
    with small_disk(tmp_path / "disk", "3m") as disk:
        with pytest.raises(UserError, match="cannot write video .*No space left on device"):
            with VideoWriter(disk / f"out{suffix}", fps=10) as writer:
                for _ in range(2000):  # noise compresses badly: about 20 KiB a frame either way
                    writer.write(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    assert 10 < writer.count < 2000, writer.count


# A child process writes noise frames (about 20 KiB each) through VideoWriter; its file-size limit
# (RLIMIT_FSIZE) makes write(2) fail with EFBIG while the disk has plenty of room, so only a writer that
# sees its actual write failures can notice. argv: path, frames, file-size limit in bytes (0: none),
# "kill" to end with SIGKILL after the last frame instead of releasing.
_WRITE_VIDEO = """
import os, resource, signal, sys
import numpy as np
from siammask.errors import UserError
from siammask.io.results import VideoWriter
path, frames, limit, end = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
rng = np.random.default_rng(0)
writer = VideoWriter(path, fps=10)
try:
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    if end == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    writer.release()
except UserError as error:
    print(writer.count, error)
    sys.exit(2)
"""


def _write_video(path, frames: int, limit: int = 0, end: str = "release") -> subprocess.CompletedProcess:
    """Its temporary files go to a folder of its own next to `path`, which must end up empty."""
    temp = path.parent / "tmp"
    temp.mkdir()
    proc = subprocess.run([sys.executable, "-c", _WRITE_VIDEO, str(path), str(frames), str(limit), end],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "TMPDIR": str(temp)})
    assert not list(temp.iterdir())
    temp.rmdir()
    return proc


def _decoded_frames(path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_a_video_write_that_fails_is_a_user_error_with_the_reason(tmp_path, suffix: str) -> None:
    """Before, OpenCV only logged it and the room-left check saw a disk with plenty of room:
    the writer went on to the end and exited 0 with a 1 MB file (checked at 999335d)."""
    path = tmp_path / f"out{suffix}"
    proc = _write_video(path, 400, limit=1_000_000)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    count, message = proc.stdout.strip().split(" ", 1)
    assert message == f"cannot write video '{path}': File too large; free space or pick another path"
    assert 20 < int(count) < 400  # reported soon after 1 MB (about 50 frames), not at the end
    assert 20 < _decoded_frames(path) <= int(count)  # what reached the file plays


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_a_video_killed_while_writing_plays_up_to_its_last_frames(tmp_path, suffix: str) -> None:
    """Before, the index of an .mp4 was written at release: a killed writer left no playable frame
    (an .avi held). What FFmpeg still held is lost: for an .mp4 up to a group of 12 pictures."""
    path = tmp_path / f"out{suffix}"
    proc = _write_video(path, 100, end="kill")
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert _decoded_frames(path) >= 100 - 2 * 12
    if shutil.which("ffprobe"):
        probe = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                                "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
                               capture_output=True, text=True, timeout=60)
        assert int(probe.stdout.strip()) >= 100 - 2 * 12, probe


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_a_video_is_complete_after_release(tmp_path, suffix: str) -> None:
    """Written as a stream through a pipe: released, every frame is there and the header says how
    many (an .avi gets its index and counts at release) and at what rate."""
    path = tmp_path / f"out{suffix}"
    proc = _write_video(path, 30)
    assert proc.returncode == 0, proc.stderr[-2000:]
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_FPS) == 10.0 and capture.get(cv2.CAP_PROP_FRAME_COUNT) == 30.0
    assert capture.set(cv2.CAP_PROP_POS_FRAMES, 20) and capture.read()[0]  # seeks
    capture.release()
    assert _decoded_frames(path) == 30
    if shutil.which("ffprobe"):
        probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                                str(path)], capture_output=True, text=True, timeout=60)
        assert float(probe.stdout) == pytest.approx(3.0), probe


def test_a_killed_avi_cut_anywhere_is_finished_up_to_its_last_whole_frame(tmp_path) -> None:
    """What a restarted sink does to the part a killed one left (finish_streamed_avi): cut at any
    byte, the file gets the index and counts of its whole frames (the cut one is dropped) or, cut
    inside its headers, is left as it is; a finished file is never changed again."""
    killed = tmp_path / "killed.avi"
    assert _write_video(killed, 30, end="kill").returncode == -9
    data = killed.read_bytes()
    movi = data.index(b"movi")
    for cut in (0, 11, 100, movi - 5, movi + 20, len(data) // 3, len(data) // 2 + 7, len(data)):
        part = tmp_path / f"cut{cut}.avi"
        part.write_bytes(data[:cut])
        frames = finish_streamed_avi(part)
        if frames:
            capture = cv2.VideoCapture(str(part))
            assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == frames
            capture.release()
            assert _decoded_frames(part) == frames
            finished = part.read_bytes()
            assert finish_streamed_avi(part) == 0 and part.read_bytes() == finished
        else:
            assert part.read_bytes() == data[:cut]
    assert frames > 20  # the whole file: every frame that reached the disk


def test_jsonl_writer_on_a_pipe_without_reader_gives_up(tmp_path, monkeypatch) -> None:
    """open(2) on a named pipe waits for its reader: forever, before; now PIPE_READER_WAIT_S."""
    import os

    from siammask.io import results
    monkeypatch.setattr(results, "PIPE_READER_WAIT_S", 0.5)
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="no program opened the named pipe for reading within 0.5 s"):
        JsonlWriter(fifo)


def test_jsonl_writer_on_a_pipe_with_a_reader(tmp_path) -> None:
    import os
    import threading

    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    with JsonlWriter(fifo) as writer:
        writer.write({"frame": 1})
    reader.join(30)
    assert got == ['{"frame": 1}\n']


def test_video_writer_on_a_pipe_without_reader_gives_up(tmp_path, monkeypatch) -> None:
    """A video output that is a named pipe waits PIPE_READER_WAIT_S for its reader, as JSON does
    (it blocked in open(2) forever), and the pipe is left in place."""
    from siammask.io import results
    monkeypatch.setattr(results, "PIPE_READER_WAIT_S", 0.5)
    fifo = tmp_path / "video.mp4"
    os.mkfifo(fifo)
    writer = VideoWriter(fifo, fps=10)
    with pytest.raises(UserError, match="cannot open video .*no program opened the named pipe for reading within 0.5 s"):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    assert fifo.is_fifo()


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_writer_on_a_pipe_with_a_reader_streams_every_frame(tmp_path, suffix) -> None:
    """Through a named pipe the reader gets a stream it can decode up to the last frame."""
    import threading

    fifo = tmp_path / f"video{suffix}"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with VideoWriter(fifo, fps=10) as writer:
        for i in range(24):
            writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    reader.join(30)
    copy = tmp_path / f"copy{suffix}"
    copy.write_bytes(got[0])
    capture = cv2.VideoCapture(str(copy))
    frames = []
    while (frame := capture.read()[1]) is not None:
        frames.append(float(frame.mean()))
    assert len(frames) == 24
    assert abs(frames[-1] - 230) < 8
