import functools
import logging
import os
import http.server
import socket
import threading
import time

import cv2
import numpy as np
import pytest

from siammask.errors import UserError
from siammask.io.sources import FrameSource, _to_bgr, open_source
from siammask.synthetic import make_sequence, write_image_folder, write_video


@pytest.fixture(scope="module")
def frames():
    return make_sequence(num_frames=12, size=(160, 120), seed=1)


@pytest.fixture
def video(tmp_path, frames):
    return write_video(frames, tmp_path / "clip.avi", fps=25.0)


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers: a stream that hangs."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in accepted:
        conn.close()


@pytest.fixture
def http_root(tmp_path):
    """Serve tmp_path over HTTP on a free local port."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _mean_abs_diff(a, b):
    return np.abs(a.astype(int) - b.astype(int)).mean()


# --- video files -----------------------------------------------------------


def test_video_file_yields_all_frames_close_to_the_originals(video, frames):
    with open_source(str(video)) as source:
        assert isinstance(source, FrameSource)
        decoded = list(source)
        assert source.fps == pytest.approx(25.0)
        assert str(video) in source.name
    assert len(decoded) == len(frames)
    for image, frame in zip(decoded, frames):
        assert image.shape == (120, 160, 3) and image.dtype == np.uint8
        assert _mean_abs_diff(image, frame.image) < 2.0


def test_closing_a_video_ends_iteration(video):
    source = open_source(str(video))
    first = next(iter(source))
    assert first.shape == (120, 160, 3)
    source.close()
    assert list(source) == []


def test_truncated_video_ends_early_with_a_warning(tmp_path, video, frames, caplog):
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="siammask.io.sources"):
        with open_source(str(video)) as source:
            assert len(list(source)) == len(frames)
        assert caplog.messages == []  # an intact file: no word
        with open_source(str(cut)) as source:
            decoded = list(source)
    assert 1 <= len(decoded) < len(frames)
    assert _mean_abs_diff(decoded[0], frames[0].image) < 2.0
    assert caplog.messages == [f"video '{cut}' ended after {len(decoded)} of the {len(frames)} frames its header "
                               "declares; the file is probably truncated"]


def test_a_video_one_frame_short_of_its_header_is_not_called_truncated(tmp_path, video, frames, caplog):
    data = video.read_bytes()
    last_chunk = data.rindex(b"00dc", data.index(b"movi"), data.index(b"idx1"))  # the last frame's AVI chunk
    short = tmp_path / "short.avi"
    short.write_bytes(data[:last_chunk])  # header and index still say 12 frames; 11 decode
    with caplog.at_level(logging.WARNING, logger="siammask.io.sources"):
        with open_source(str(short)) as source:
            assert source.total == len(frames)
            assert len(list(source)) == len(frames) - 1
    assert caplog.messages == []


def test_a_truncated_video_opened_again_is_reported_once(tmp_path, video, frames, caplog):
    """A looping serve stream reopens its file on every loop: one warning, not one per loop."""
    data = video.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    counts = []
    with caplog.at_level(logging.WARNING, logger="siammask.io.sources"):
        for _ in range(3):
            with open_source(str(cut)) as source:
                counts.append(len(list(source)))
    assert len(set(counts)) == 1 and counts[0] < len(frames) - 1
    assert caplog.messages == [f"video '{cut}' ended after {counts[0]} of the {len(frames)} frames its header "
                               "declares; the file is probably truncated"]


def test_files_and_folders_promise_their_frame_count_streams_none(tmp_path, video, frames, http_root):
    folder = write_image_folder(frames, tmp_path / "folder")
    with open_source(str(video)) as source:
        assert source.total == len(frames)
    with open_source(str(folder)) as source:
        assert source.total == len(frames)
    with open_source(f"{http_root}/{video.name}") as source:  # a stream (cameras, pipes, URLs) may not end
        assert source.total is None
        assert len(list(source)) == len(frames)


def test_video_without_a_decodable_frame_is_a_user_error(tmp_path, video):
    data = video.read_bytes()
    first_chunk = data.index(b"00dc", data.index(b"movi"))  # the first video frame's AVI chunk
    broken = tmp_path / "broken.avi"
    broken.write_bytes(data[: first_chunk + 64])  # valid header, frame cut short
    with pytest.raises(UserError, match=r"cannot read video '.*broken\.avi': no frame could be decoded"):
        open_source(str(broken))


def test_text_file_named_mp4_is_a_user_error(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    with pytest.raises(UserError, match=r"cannot open video '.*notes\.mp4': not a readable video"):
        open_source(str(fake))


def test_missing_path_is_a_user_error(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(UserError, match=r"nope\.mp4.*file not found; pass an existing video file"):
        open_source(str(missing))


def test_empty_spec_is_a_user_error():
    with pytest.raises(UserError, match="no video source given"):
        open_source("  ")


# --- image folders -----------------------------------------------------------


def test_png_folder_yields_exact_frames(tmp_path, frames):
    folder = write_image_folder(frames, tmp_path / "seq")
    (folder / "groundtruth.txt").write_text("1,2,3,4\n")  # non-image files are ignored
    with open_source(str(folder)) as source:
        decoded = list(source)
        assert source.fps is None
        assert len(source) == len(frames)
        assert f"({len(frames)} images)" in source.name
    assert len(decoded) == len(frames)
    for image, frame in zip(decoded, frames):
        assert np.array_equal(image, frame.image)


def test_folder_is_read_in_natural_name_order(tmp_path):
    for value, name in ((10, "f1.png"), (20, "f2.PNG"), (30, "f10.png"), (40, "F11.bmp")):
        cv2.imwrite(str(tmp_path / name), np.full((8, 8, 3), value, np.uint8))
    values = [int(image[0, 0, 0]) for image in open_source(str(tmp_path))]
    assert values == [10, 20, 30, 40]


def test_hidden_files_are_ignored(tmp_path):
    cv2.imwrite(str(tmp_path / "0001.jpg"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "._0001.jpg").write_bytes(b"macOS resource fork")
    assert len(list(open_source(str(tmp_path)))) == 1


def test_gray_and_rgba_images_become_bgr(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    bgra = np.zeros((8, 8, 4), np.uint8)
    bgra[..., :3] = (10, 20, 30)
    bgra[..., 3] = 128
    cv2.imwrite(str(tmp_path / "0.png"), gray)
    cv2.imwrite(str(tmp_path / "1.png"), bgra)
    first, second = list(open_source(str(tmp_path)))
    assert first.shape == second.shape == (8, 8, 3)
    assert np.array_equal(first, np.repeat(gray[..., None], 3, axis=2))
    assert np.array_equal(second, bgra[..., :3])


def test_empty_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="has no .jpg, .jpeg, .png, .bmp or .webp images"):
        open_source(str(tmp_path))


def test_folder_without_images_is_a_user_error(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    (tmp_path / "sub").mkdir()
    with pytest.raises(UserError, match="has no .jpg"):
        open_source(str(tmp_path))


def test_corrupt_first_image_fails_at_open(tmp_path, frames):
    write_image_folder(frames[:3], tmp_path)
    (tmp_path / "00000.png").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(UserError, match=r"cannot decode image '.*00000\.png'"):
        open_source(str(tmp_path))


def test_corrupt_image_mid_folder_names_the_file_and_skips_nothing(tmp_path, frames):
    write_image_folder(frames[:3], tmp_path)
    (tmp_path / "00001.jpg").write_bytes(b"not a jpeg at all")
    source = open_source(str(tmp_path))
    frames_seen = iter(source)
    assert np.array_equal(next(frames_seen), frames[0].image)
    with pytest.raises(UserError, match=r"cannot decode image '.*00001\.jpg': corrupt"):
        next(frames_seen)


def test_empty_image_file_is_a_user_error(tmp_path):
    (tmp_path / "0.png").write_bytes(b"")
    with pytest.raises(UserError, match=r"0\.png"):
        open_source(str(tmp_path))


def test_image_of_another_size_is_a_user_error(tmp_path):
    cv2.imwrite(str(tmp_path / "0.png"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((9, 8, 3), np.uint8))
    with pytest.raises(UserError, match=r"'.*1\.png' is 8x9 but the first frame is 8x8"):
        list(open_source(str(tmp_path)))


# --- cameras and streams -------------------------------------------------------


def test_bad_camera_index_is_a_user_error():
    with pytest.raises(UserError, match="cannot open camera 99"):
        open_source("99", open_timeout_s=1.0)


def test_refused_stream_is_a_quick_user_error():
    start = time.monotonic()
    with pytest.raises(UserError, match=r"cannot open stream 'rtsp://127\.0\.0\.1:1/x'"):
        open_source("rtsp://127.0.0.1:1/x", open_timeout_s=1.0, read_timeout_s=1.0)
    assert time.monotonic() - start < 5


def test_hanging_stream_times_out_as_a_user_error(silent_server):
    start = time.monotonic()
    with pytest.raises(UserError, match="timed out"):
        open_source(f"rtsp://127.0.0.1:{silent_server}/live", open_timeout_s=1.0, read_timeout_s=1.0)
    elapsed = time.monotonic() - start
    assert 0.8 < elapsed < 5


def test_stream_password_is_not_shown(silent_server):
    with pytest.raises(UserError) as info:
        open_source(f"rtsp://admin:hunter2@127.0.0.1:{silent_server}/x", open_timeout_s=0.5)
    assert "hunter2" not in str(info.value)
    assert "admin:***@127.0.0.1" in str(info.value)


def test_unsupported_url_scheme_is_a_user_error():
    with pytest.raises(UserError, match=r"unsupported scheme 'ftp://'; use one of rtsp://"):
        open_source("ftp://example.com/video.mp4")


def test_http_url_streams_a_video(http_root, video, frames):
    with open_source(f"{http_root}/{video.name}", open_timeout_s=3.0, read_timeout_s=3.0) as source:
        assert source.name.startswith("stream 'http://127.0.0.1:")
        decoded = list(source)
    assert len(decoded) == len(frames)
    assert _mean_abs_diff(decoded[-1], frames[-1].image) < 2.0


def test_to_bgr_expands_gray_and_drops_alpha():
    gray = np.full((2, 3), 7, np.uint8)
    assert np.array_equal(_to_bgr(gray), np.full((2, 3, 3), 7, np.uint8))
    assert _to_bgr(gray[..., None]).shape == (2, 3, 3)
    bgra = np.dstack([np.full((2, 3, 3), 5, np.uint8), np.full((2, 3), 200, np.uint8)])
    assert np.array_equal(_to_bgr(bgra), np.full((2, 3, 3), 5, np.uint8))


def test_named_pipe_streams_what_its_writer_writes(tmp_path, video, frames):
    pipe = tmp_path / "feed.pipe"
    os.mkfifo(pipe)
    data = video.read_bytes()

    def write():
        with open(pipe, "wb") as out:  # waits for the reader, as ffmpeg writing into a pipe would
            out.write(data)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with open_source(str(pipe), open_timeout_s=5, read_timeout_s=5) as source:
        assert source.name == f"pipe '{pipe}'"
        got = list(source)
    writer.join(5)
    assert len(got) == len(frames)
    assert all(_mean_abs_diff(image, frame.image) < 2.0 for image, frame in zip(got, frames))


def test_named_pipe_whose_writer_finished_before_the_open(tmp_path):
    """A writer that wrote a whole (small) video and closed before the reader got to it: every frame
    is still read, and the end of the data ends the source."""
    small = make_sequence(num_frames=3, size=(64, 48), seed=2)
    data = write_video(small, tmp_path / "small.avi").read_bytes()
    assert len(data) < 60_000  # fits the pipe's buffer, so the writer can finish on its own
    pipe = tmp_path / "feed.pipe"
    os.mkfifo(pipe)
    done = threading.Event()

    def write():
        with open(pipe, "wb") as out:
            out.write(data)
        done.set()

    threading.Thread(target=write, daemon=True).start()
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # lets the writer in and finish, as a slow start would
    got = []

    def read():
        with open_source(str(pipe), open_timeout_s=5, read_timeout_s=5) as source:
            got.extend(source)

    try:
        assert done.wait(10)
        thread = threading.Thread(target=read, daemon=True)  # a hang (waiting for a writer gone) fails, not blocks
        thread.start()
        thread.join(30)
    finally:
        os.close(reader)
    assert not thread.is_alive(), "opening the pipe waited for a writer that had already finished"
    assert len(got) == 3


def test_named_pipe_whose_writer_sends_nothing_is_a_user_error(tmp_path):
    pipe = tmp_path / "feed.pipe"
    os.mkfifo(pipe)

    def open_and_close():
        with open(pipe, "wb"):
            pass

    writer = threading.Thread(target=open_and_close, daemon=True)
    writer.start()
    with pytest.raises(UserError, match="closed it without sending anything"):
        open_source(str(pipe), open_timeout_s=5, read_timeout_s=5)
    writer.join(5)
