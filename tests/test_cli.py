"""End-to-end tests of `siammask track`: the real command in a subprocess, real files, a real local
HTTP server. The checkpoints hold seeded random weights, so tracking quality means nothing here;
the tests check structure, exact invariants and agreement between runs that must agree.

Every tracking run except the Ctrl-C ones starts at once from the `runs` fixture, two processes at
a time (the runs are independent; the box has two cores), and the tests below read their results.
Refused inputs run in this process (`siammask.cli.main`, file descriptor 2 captured, so OpenCV's or
FFmpeg's own messages would show too): a process importing torch costs seconds, a refusal less than
one. PROCESS_CASES, one per stage that refuses (arguments, source, weights, writing), also run as
real processes for the contract at the process boundary: exit status 2, one line, no traceback."""
from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

import siammask
import torch
from siammask.checkpoint import save_checkpoint
from siammask.cli import main
from siammask.io.results import decode_mask
from siammask.model import SiamMask
from siammask.synthetic import make_sequence, write_image_folder

pytestmark = pytest.mark.slow  # every test runs the command as processes (the runs fixture: minutes)
NUM_FRAMES = 12
WIDTH, HEIGHT = 160, 120
RECORD_KEYS = {"frame", "box", "polygon", "score", "presence", "lost", "found", "mask", "target"}
LOST_THRESHOLD = 0.3  # TrackerConfig default; no preset overrides it
SECOND_BOX = (100.0, 70.0, 30.0, 25.0)
DEFAULT_WEIGHTS = Path(siammask.__file__).resolve().parent / "weights" / "default.pth"
SUBPROCESS_TIMEOUT_S = 180  # hang guard only; nothing asserts on durations
# One OpenMP thread per run: on a small shared box two spinning threads slow a run down several
# times whenever another process wants the cores. Every run uses the same setting, so runs that
# must agree (folder vs video vs URL) stay comparable to the last bit.
CLI_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
PYTHON_CLI = [sys.executable, "-m", "siammask.cli"]


def _as_from_a_terminal() -> None:
    """In the child before exec: Ctrl-C as a terminal delivers it (default action, not blocked).
    A suite started in the background inherits SIGINT ignored, which exec keeps."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


# --- helpers ---------------------------------------------------------------


def box_arg(box) -> str:
    return ",".join(repr(float(v)) for v in box)


def run_track(*args, cwd: Path, command: list[str] = PYTHON_CLI) -> subprocess.CompletedProcess:
    """Run `siammask track ARGS` as a real process and capture its output."""
    return subprocess.run([*command, "track", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT_S, env=CLI_ENV)


def read_jsonl(path: Path) -> list[dict]:
    text = Path(path).read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "last JSON line is incomplete"
    return [json.loads(line) for line in text.splitlines()]


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    assert capture.isOpened(), f"{path} does not open as a video"
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames, fps


def corners(box) -> list[float]:
    x, y, w, h = box
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def check_records(records: list[dict], boxes, num_frames: int = NUM_FRAMES) -> None:
    """Every invariant a run's JSON lines must satisfy, whatever the weights."""
    targets = len(boxes)
    assert len(records) == num_frames * targets
    assert [(r["frame"], r["target"]) for r in records] == [(f, t) for f in range(num_frames) for t in range(targets)]
    previous: dict[int, dict] = {}
    for r in records:
        assert set(r) == RECORD_KEYS, r.keys()
        assert len(r["box"]) == 4 and all(type(v) is float for v in r["box"])
        assert len(r["polygon"]) == 8 and all(type(v) is float for v in r["polygon"])
        assert type(r["score"]) is float and type(r["lost"]) is bool
        assert type(r["presence"]) is float and 0.0 <= r["presence"] <= 1.0 and type(r["found"]) is bool
        before, previous[r["target"]] = previous.get(r["target"]), r
        if r["frame"] == 0:
            given = [float(v) for v in boxes[r["target"]]]
            assert r["box"] == given  # exactly the --box values
            assert r["polygon"] == pytest.approx(corners(given), abs=1e-9)
            assert r["mask"] is None
            assert r["score"] == 1.0 and r["presence"] == 1.0 and r["lost"] is False and r["found"] is False
            continue
        assert 0.0 <= r["score"] <= 1.0
        # lost when the (smoothed) presence falls below lost_threshold; found on the first frame after
        # a lost one that is not lost
        if before["lost"]:
            assert r["found"] is not r["lost"]
        else:
            assert r["found"] is False and r["lost"] == (r["presence"] < LOST_THRESHOLD)
        mask = r["mask"]
        if mask is None:  # re-detection on: a lost target stays at the last box where it was seen
            assert r["lost"] and r["box"] == before["box"]
            assert r["polygon"] == pytest.approx(corners(r["box"]), abs=1e-9)
            continue
        assert set(mask) == {"size", "counts"} and mask["size"] == [HEIGHT, WIDTH]
        assert isinstance(mask["counts"], str)
        assert decode_mask(mask).shape == (HEIGHT, WIDTH)
        # the tracker clamps the centre into the frame and the size into [10, frame size]
        x, y, w, h = r["box"]
        assert 10 <= w <= WIDTH and 10 <= h <= HEIGHT
        assert -1e-9 <= x + w / 2 <= WIDTH + 1e-9 and -1e-9 <= y + h / 2 <= HEIGHT + 1e-9


def check_mask_dir(folder: Path, records: list[dict], num_frames: int = NUM_FRAMES) -> None:
    """NNNNN.png for every frame but the first, single-channel 0/255, equal to the JSON line's RLE."""
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:05d}.png" for i in range(1, num_frames)]
    by_frame = {r["frame"]: r for r in records}
    for i in range(1, num_frames):
        image = cv2.imread(str(folder / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.shape == (HEIGHT, WIDTH) and image.dtype == np.uint8
        assert set(np.unique(image).tolist()) <= {0, 255}
        np.testing.assert_array_equal(image == 255, decode_mask(by_frame[i]["mask"]))


def max_box_difference(a: list[dict], b: list[dict]) -> float:
    assert len(a) == len(b)
    return max(abs(u - v) for ra, rb in zip(a, b) for u, v in zip(ra["box"], rb["box"]))


def stderr_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def assert_ok(run) -> None:
    assert run.proc.returncode == 0, run.proc.stderr
    assert "Traceback" not in run.proc.stderr, run.proc.stderr


def cli_in_process(*argv, capfd) -> tuple[int, list[str]]:
    """`siammask ARGV` run by this process: its exit status and every line it wrote to stderr."""
    capfd.readouterr()  # what came before is not this run's
    status = main([str(a) for a in argv])
    return status, capfd.readouterr().err.splitlines()


def assert_one_line_error(status: int, lines: list[str], *needles: str) -> None:
    """Exit 2 and exactly one stderr line: our error, naming the problem."""
    assert status == 2, lines
    assert len(lines) == 1 and lines[0].startswith("siammask: error:"), lines
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 2, no traceback, and the last stderr line is our error naming the problem."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = stderr_lines(proc)
    assert lines, "nothing on stderr"
    last = lines[-1]
    assert last.startswith("siammask: error:"), proc.stderr
    for needle in needles:
        assert needle in last, f"{needle!r} not in {last!r}"


# --- all runs ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def first_box(synthetic_frames):
    return synthetic_frames[0].box


@pytest.fixture(scope="module")
def http_url(synthetic_video):
    """The synthetic video served over HTTP from this process, on a free local port."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(synthetic_video.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{synthetic_video.name}"
    server.shutdown()
    server.server_close()
    thread.join()


BAD_CASES = ["missing_source", "empty_folder", "text_named_mp4", "box_outside_frame", "zero_width",
             "negative_height", "missing_weights", "corrupt_weights", "truncated_weights", "base_weights_as_sharp",
             "json_folder_missing", "masks_under_a_file", "gif_output", "hp_nonsense", "camera_99", "rtsp_refused",
             # issue 14: boxes, hyper-parameters, weights and outputs that used to end in a traceback
             "box_0.1", "box_1e5", "box_1e20", "box_1e308", "box_syntax", "hp_instance_size_0", "hp_total_stride_0",
             "hp_ratios_empty", "hp_lr_nan", "nan_weights", "json_disk_full"]
# Also run as real processes: one refusal per stage (argument parsing, source, weights, writing
# results), and the sources whose libraries (OpenCV, FFmpeg) could print on stderr themselves.
PROCESS_CASES = ["box_syntax", "text_named_mp4", "camera_99", "nan_weights", "json_disk_full"]
# Rejected runs that were given outputs must not leave them behind (issue 14: a 0-byte --json)
NO_OUTPUT_CASES = ["box_outside_frame", "box_0.1", "box_1e5", "missing_source", "nan_weights", "hp_lr_nan"]


@pytest.fixture(scope="module")
def bad_cases(tmp_path_factory, synthetic_folder, sharp_checkpoint, base_checkpoint, first_box):
    """name -> (`track` arguments, words its one-line error must contain), with the broken files they name."""
    box = ["--box", box_arg(first_box)]
    sharp = ["--weights", sharp_checkpoint]
    bad = tmp_path_factory.mktemp("bad")
    (bad / "empty").mkdir()
    (bad / "x.mp4").write_text("this is not a video\n")
    (bad / "corrupt.pth").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8).tobytes())
    with open(sharp_checkpoint, "rb") as src:
        (bad / "truncated.pth").write_bytes(src.read(1_000_000))
    (bad / "a_file").write_text("")
    torch.manual_seed(0)
    diverged = SiamMask("sharp").eval()
    with torch.no_grad():
        next(diverged.mask_head.parameters()).fill_(float("nan"))
    save_checkpoint(diverged, bad / "diverged.pth", config={"hp": "davis"})
    hp_files = {}
    for name, change in (("instance_size_0", {"instance_size": "0"}), ("total_stride_0", {"total_stride": "0"}),
                         ("ratios_empty", {"ratios": "[]"}), ("lr_nan", {"lr": ".nan"})):
        values = {"penalty_k": "0.04", "window_influence": "0.4", "lr": "1.0", "seg_thr": "0.35", **change}
        hp_files[name] = bad / f"{name}.yaml"
        hp_files[name].write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    folder = synthetic_folder
    bad_cases = {  # name -> (arguments, words the error must contain)
        "missing_source": ([bad / "nope.avi", *box, *sharp], ["nope.avi", "not found"]),
        "empty_folder": ([bad / "empty", *box, *sharp], ["empty", "no .jpg"]),
        "text_named_mp4": ([bad / "x.mp4", *box, *sharp], ["x.mp4", "not a readable video"]),
        "box_outside_frame": ([folder, "--box", "500,500,10,10", *sharp], ["500,500,10,10", "outside", "160x120"]),
        "zero_width": ([folder, "--box", "10,10,0,10", *sharp], ["10,10,0,10", "zero or negative"]),
        "negative_height": ([folder, "--box", "10,10,10,-5", *sharp], ["10,10,10,-5", "zero or negative"]),
        "missing_weights": ([folder, *box, "--weights", bad / "missing.pth"], ["missing.pth", "not found"]),
        "corrupt_weights": ([folder, *box, "--weights", bad / "corrupt.pth"], ["corrupt.pth", "not a readable"]),
        "truncated_weights": ([folder, *box, "--weights", bad / "truncated.pth"], ["truncated.pth", "not a readable"]),
        "base_weights_as_sharp": ([folder, *box, "--weights", base_checkpoint, "--variant", "sharp"],
                                  ["base.pth", "--variant base"]),
        "json_folder_missing": ([folder, *box, *sharp, "--json", bad / "no_such_dir" / "r.jsonl"],
                                ["no_such_dir", "does not exist"]),
        "masks_under_a_file": ([folder, *box, *sharp, "--masks", bad / "a_file" / "masks"], ["a_file", "mask"]),
        "gif_output": ([folder, *box, *sharp, "--output", bad / "out.gif"], ["'.gif'", ".mp4"]),
        "hp_nonsense": ([folder, *box, *sharp, "--hp", "nonsense"], ["'nonsense'", "davis"]),
        "camera_99": (["99", *box, *sharp], ["camera 99"]),
        "rtsp_refused": (["rtsp://127.0.0.1:1/x", *box, *sharp], ["rtsp://127.0.0.1:1/x"]),
        "box_0.1": ([folder, "--box", "10,10,0.1,0.1", *sharp], ["'10,10,0.1,0.1'", "smaller than 2 px"]),
        "box_1e5": ([folder, "--box", "10,10,1e5,1e5", *sharp], ["larger than the 160x120 frame"]),
        "box_1e20": ([folder, "--box", "1e20,1e20,1e20,1e20", *sharp], ["outside the 160x120 frame"]),
        "box_1e308": ([folder, "--box", "0,0,1e308,1e308", *sharp], ["larger than the 160x120 frame"]),
        "box_syntax": ([folder, "--box", "10;10;5;5", *sharp], ["'10;10;5;5'", "X,Y,W,H"]),
        "hp_instance_size_0": ([folder, *box, *sharp, "--hp", hp_files["instance_size_0"]],
                               ["instance_size must be in [32, 2048], got 0"]),
        # stride and anchors are the variant's (siammask/variants.py), not hyper-parameters
        "hp_total_stride_0": ([folder, *box, *sharp, "--hp", hp_files["total_stride_0"]],
                              ["unknown key(s) total_stride"]),
        "hp_ratios_empty": ([folder, *box, *sharp, "--hp", hp_files["ratios_empty"]],
                            ["unknown key(s) ratios"]),
        "hp_lr_nan": ([folder, *box, *sharp, "--hp", hp_files["lr_nan"]], ["lr: expected a finite number"]),
        "nan_weights": ([folder, *box, "--weights", bad / "diverged.pth"], ["diverged.pth", "NaN or infinite weights"]),
        "json_disk_full": ([folder, *box, *sharp, "--json", "/dev/full"], ["/dev/full", "No space left on device"]),
    }
    if not Path("/dev/full").exists():
        del bad_cases["json_disk_full"]
    assert sorted(bad_cases) == sorted(c for c in BAD_CASES if c in bad_cases)
    return bad_cases


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_video, synthetic_folder, sharp_checkpoint, base_checkpoint, first_box, http_url,
         bad_cases):
    """name -> SimpleNamespace(proc=finished process, plus the paths it wrote and what to expect)."""
    work = tmp_path_factory.mktemp("cli")
    box = ["--box", box_arg(first_box)]
    sharp = ["--weights", sharp_checkpoint]
    jobs: dict[str, tuple[list, dict]] = {}  # name -> (command line after `track`, attributes)

    def full(name, source, *extra, command=PYTHON_CLI, quiet=True, video=".mp4"):
        out = work / name
        paths = dict(json=out / "results.jsonl", masks=out / "masks", output=out / f"annotated{video}")
        out.mkdir()
        args = [source, *box, *extra, "--json", paths["json"], "--masks", paths["masks"], "--output", paths["output"]]
        jobs[name] = ([*args, *(["--quiet"] if quiet else [])], dict(paths, command=command))

    def json_only(name, source, *extra):
        path = work / f"{name}.jsonl"
        jobs[name] = ([source, *extra, "--json", path, "--quiet"], dict(json=path))

    # The installed console script, progress bar on, on the (lossless FFV1) video file.
    script = shutil.which("siammask", path=str(Path(sys.executable).parent)) or shutil.which("siammask")
    assert script, "the `siammask` console script is not installed (pip install -e .)"
    full("video", synthetic_video, *sharp, command=[script], quiet=False)
    full("folder", synthetic_folder, *sharp)
    jobs["two"] = ([synthetic_folder, *box, "--box", box_arg(SECOND_BOX), *sharp, "--json", work / "two.jsonl",
                    "--masks", work / "two_masks", "--quiet"], dict(json=work / "two.jsonl", masks=work / "two_masks"))
    json_only("second_alone", synthetic_folder, "--box", box_arg(SECOND_BOX), *sharp)
    base = work / "base"
    jobs["base"] = ([synthetic_video, *box, "--weights", base_checkpoint, "--variant", "base", "--json",
                     base.with_suffix(".jsonl"), "--masks", base, "--quiet"], dict(json=base.with_suffix(".jsonl"),
                                                                                   masks=base))
    json_only("hp_vot", synthetic_folder, *box, *sharp, "--hp", "vot")
    # lr 0 freezes the target size: with it every frame's box keeps the given width and height.
    frozen = work / "frozen_size.yaml"
    frozen.write_text("penalty_k: 0.04\nwindow_influence: 0.40\nlr: 0.0\nseg_thr: 0.35\n")
    json_only("hp_yaml", synthetic_folder, *box, *sharp, "--hp", frozen)
    json_only("url", http_url, *box, *sharp)
    # The intact folder with frame 6 cut in half, as an interrupted copy or download leaves it.
    corrupt = work / "corrupt_frames"
    shutil.copytree(synthetic_folder, corrupt)
    data = (corrupt / "00006.png").read_bytes()
    (corrupt / "00006.png").write_bytes(data[:len(data) // 2])
    full("corrupt", corrupt, *sharp, video=".avi")
    json_only("no_weights", synthetic_folder, *box)

    for case in PROCESS_CASES:
        if case in bad_cases:
            args, needles = bad_cases[case]
            jobs[f"bad:{case}"] = ([*args, "--quiet"], dict(needles=needles))
    truncated = work / "truncated.avi"
    data = synthetic_video.read_bytes()
    truncated.write_bytes(data[:len(data) // 2])
    json_only("truncated", truncated, *box, *sharp)
    jobs["truncated"][1]["source"] = truncated

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_track, *args, cwd=work, command=attrs.pop("command", PYTHON_CLI))
                   for name, (args, attrs) in jobs.items()}
        return {name: SimpleNamespace(proc=futures[name].result(), **attrs) for name, (_, attrs) in jobs.items()}


@pytest.fixture(params=["video", "folder"])
def full_run(request, runs):
    return runs[request.param]


# --- video file and image folder ------------------------------------------


def test_run_exits_0_and_reports_a_summary(full_run):
    assert_ok(full_run)
    assert stderr_lines(full_run.proc)[-1] == "siammask: tracked 12 frames, 1 target(s)"


def test_json_has_one_complete_line_per_frame(full_run, first_box):
    assert_ok(full_run)
    check_records(read_jsonl(full_run.json), [first_box])


def test_mask_pngs_equal_the_json_masks(full_run):
    assert_ok(full_run)
    check_mask_dir(full_run.masks, read_jsonl(full_run.json))


def test_annotated_video_has_every_frame(full_run, synthetic_frames, first_box):
    assert_ok(full_run)
    frames, fps = read_video(full_run.output)
    assert len(frames) == NUM_FRAMES
    assert all(f.shape == (HEIGHT, WIDTH, 3) for f in frames)
    assert fps == pytest.approx(25.0)  # the video's own rate, and the default for image folders
    # Frame 0 carries target 0's polygon (the given box) in green along its top edge...
    x, y, w, _ = (int(v) for v in first_box)
    edge = np.s_[y - 1:y + 2, x + 3:x + w - 3]
    drawn = frames[0][edge].reshape(-1, 3).astype(float).mean(axis=0)
    original = synthetic_frames[0].image[edge].reshape(-1, 3).astype(float).mean(axis=0)
    assert drawn[1] - max(drawn[0], drawn[2]) > 100, drawn
    assert original[1] - max(original[0], original[2]) < 60, original
    # ...and away from the drawing it is the input frame (mp4v is lossy, so only close).
    corner = np.s_[HEIGHT - 30:, WIDTH - 40:]
    assert np.abs(frames[0][corner].astype(int) - synthetic_frames[0].image[corner]).mean() < 12


def test_folder_and_lossless_video_track_identically(runs, synthetic_video, synthetic_folder):
    assert_ok(runs["video"])
    assert_ok(runs["folder"])
    capture = cv2.VideoCapture(str(synthetic_video), cv2.CAP_FFMPEG)
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode("ascii", "replace")
    capture.release()
    if fourcc.upper() != "FFV1":
        pytest.skip(f"this OpenCV wrote the fixture video as {fourcc}, not lossless FFV1")
    decoded, _ = read_video(synthetic_video)
    pngs = sorted(synthetic_folder.glob("*.png"))
    assert len(decoded) == len(pngs) == NUM_FRAMES
    for frame, png in zip(decoded, pngs):
        np.testing.assert_array_equal(frame, cv2.imread(str(png)))
    video, folder = read_jsonl(runs["video"].json), read_jsonl(runs["folder"].json)
    assert max_box_difference(video, folder) <= 1e-6
    for a, b in zip(video, folder):
        assert a["score"] == pytest.approx(b["score"], abs=1e-6)
        assert a["mask"] == b["mask"]


# --- several targets --------------------------------------------------------


def test_two_boxes_track_two_targets(runs, first_box):
    two = runs["two"]
    assert_ok(two)
    assert stderr_lines(two.proc)[-1] == "siammask: tracked 12 frames, 2 target(s)"
    records = read_jsonl(two.json)
    check_records(records, [first_box, SECOND_BOX])
    assert sorted(p.name for p in two.masks.iterdir()) == ["0", "1"]
    for t in (0, 1):
        check_mask_dir(two.masks / str(t), [r for r in records if r["target"] == t])


def test_each_of_two_targets_is_tracked_as_if_alone(runs):
    assert_ok(runs["two"])
    assert_ok(runs["second_alone"])
    records = read_jsonl(runs["two"].json)
    # only the float rounding of the batched network differs from one target per run
    assert max_box_difference([r for r in records if r["target"] == 0], read_jsonl(runs["folder"].json)) < 1e-2
    assert max_box_difference([r for r in records if r["target"] == 1], read_jsonl(runs["second_alone"].json)) < 1e-2


# --- model options ------------------------------------------------------------


def test_base_variant_with_base_checkpoint(runs, first_box):
    assert_ok(runs["base"])
    records = read_jsonl(runs["base"].json)
    check_records(records, [first_box])
    check_mask_dir(runs["base"].masks, records)


def test_hp_preset_vot_changes_the_tracking(runs, first_box):
    assert_ok(runs["hp_vot"])
    vot, davis = read_jsonl(runs["hp_vot"].json), read_jsonl(runs["folder"].json)
    check_records(vot, [first_box])
    assert vot[0] == davis[0]
    # davis moves the size with lr 1.0, vot with 0.25: the same network output gives another box
    assert max(abs(u - v) for u, v in zip(vot[1]["box"], davis[1]["box"])) > 1e-3


def test_hp_yaml_file_is_used(runs, first_box):
    assert_ok(runs["hp_yaml"])
    records = read_jsonl(runs["hp_yaml"].json)
    check_records(records, [first_box])
    size = [first_box[2], first_box[3]]
    assert all(r["box"][2:] == size for r in records)  # the file's lr 0 froze the size
    assert any(r["box"][2:] != size for r in read_jsonl(runs["folder"].json))  # the default (lr 1.0) does not


# --- URL source ---------------------------------------------------------------


def test_http_url_source(runs, first_box):
    assert_ok(runs["url"])
    records = read_jsonl(runs["url"].json)
    check_records(records, [first_box])
    # the same bytes through the same decoder: the same results as the file
    assert max_box_difference(records, read_jsonl(runs["video"].json)) <= 1e-6


# --- bad inputs -----------------------------------------------------------------

def _bad(cases: dict, case: str):
    if case not in cases:
        pytest.skip(f"{case} needs what this machine lacks (/dev/full)")
    return cases[case]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_a_one_line_user_error(bad_cases, case, capfd):
    args, needles = _bad(bad_cases, case)
    assert_one_line_error(*cli_in_process("track", *args, "--quiet", capfd=capfd), *needles)


@pytest.mark.parametrize("case", PROCESS_CASES)
def test_bad_input_as_a_process_exits_2_with_one_line(runs, case):
    run = _bad(runs, f"bad:{case}")
    assert_user_error(run.proc, *run.needles)
    assert len(run.proc.stderr.splitlines()) == 1, run.proc.stderr


@pytest.mark.parametrize("case", NO_OUTPUT_CASES)
def test_refused_input_creates_no_output(bad_cases, case, tmp_path, capfd):
    args, needles = bad_cases[case]
    outputs = dict(json=tmp_path / "r.jsonl", masks=tmp_path / "masks", output=tmp_path / "v.avi")
    flags = [x for k, v in outputs.items() for x in (f"--{k}", v)]
    assert_one_line_error(*cli_in_process("track", *args, "--quiet", *flags, capfd=capfd), *needles)
    assert [p for p in outputs.values() if p.exists()] == []


def test_malformed_box_is_one_line_naming_the_box_without_usage(synthetic_folder, sharp_checkpoint, capfd):
    assert cli_in_process("track", synthetic_folder, "--box", "1,2,3", "--weights", sharp_checkpoint, capfd=capfd) == (
        2, ["siammask: error: box '1,2,3' is not X,Y,W,H (four numbers separated by commas)"])


def test_truncated_video_warns_with_frames_read_and_declared(runs, first_box):
    run = runs["truncated"]
    assert_ok(run)
    records = read_jsonl(run.json)
    read = len(records)
    assert 1 <= read < NUM_FRAMES
    check_records(records, [first_box], num_frames=read)
    assert stderr_lines(run.proc)[-2:] == [
        f"siammask: warning: video '{run.source}' ended after {read} of the {NUM_FRAMES} frames its header "
        "declares; the file is probably truncated",
        f"siammask: tracked {read} frames, 1 target(s)"]


def test_corrupt_image_mid_folder_keeps_the_frames_before_it(runs):
    corrupt = runs["corrupt"]
    assert_user_error(corrupt.proc, "00006.png", "cannot decode")
    records = read_jsonl(corrupt.json)  # every line complete
    assert [r["frame"] for r in records] == [0, 1, 2, 3, 4, 5]
    assert all(set(r) == RECORD_KEYS for r in records)
    # the same results as the intact folder gave for those frames: none lost or shifted
    assert records == read_jsonl(runs["folder"].json)[:6]
    assert sorted(p.name for p in corrupt.masks.iterdir()) == [f"{i:05d}.png" for i in range(1, 6)]
    frames, _ = read_video(corrupt.output)  # finalised, with the frames tracked so far
    assert len(frames) == 6


def test_corrupt_image_stderr_is_one_line(runs):
    proc = runs["corrupt"].proc
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_no_weights_option(runs, first_box):
    run = runs["no_weights"]
    if DEFAULT_WEIGHTS.is_file():
        assert_ok(run)
        check_records(read_jsonl(run.json), [first_box])
    else:
        assert_user_error(run.proc, "--weights")
        assert len(run.proc.stderr.splitlines()) == 1, run.proc.stderr


# --- Ctrl-C -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_folder(tmp_path_factory):
    return write_image_folder(make_sequence(num_frames=300, size=(WIDTH, HEIGHT)), tmp_path_factory.mktemp("long"))


def test_ctrl_c_stops_cleanly_and_keeps_complete_outputs(tmp_path, long_folder, sharp_checkpoint):
    box = make_sequence(num_frames=1, size=(WIDTH, HEIGHT))[0].box
    json_path, video_path = tmp_path / "interrupted.jsonl", tmp_path / "interrupted.avi"
    proc = subprocess.Popen([*PYTHON_CLI, "track", str(long_folder), "--box", box_arg(box),
                             "--weights", str(sharp_checkpoint), "--json", str(json_path),
                             "--output", str(video_path), "--quiet"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLI_ENV,
                            preexec_fn=_as_from_a_terminal)
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S  # hang guard, not a timing assertion
        while not (json_path.is_file() and json_path.read_text().count("\n") >= 3):
            assert proc.poll() is None, f"the run ended before 3 frames: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no 3 JSON lines within the hang guard"
            time.sleep(0.005)
        # No pause: Ctrl-C is only acted on between frames, so it may land mid-frame.
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    records = read_jsonl(json_path)
    count = len(records)
    assert 3 <= count < 300
    assert [r["frame"] for r in records] == list(range(count))
    assert all(set(r) == RECORD_KEYS for r in records)
    assert stderr.strip().splitlines()[-1] == (
        f"siammask: interrupted after {count} frames; outputs written so far are kept")
    frames, _ = read_video(video_path)
    assert len(frames) == count
    assert all(f.shape == (HEIGHT, WIDTH, 3) for f in frames)


def _holds_open(pid: int, path: Path) -> bool:
    try:
        return any(os.readlink(fd) == str(path) for fd in Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False


def test_ctrl_c_while_waiting_for_a_pipe_writer(tmp_path, sharp_checkpoint):
    """A named pipe nobody writes into: the run waits for a writer, and Ctrl-C ends the wait (it used
    to be stuck inside OpenCV's open(2)). Nothing is written for a run that never started."""
    pipe = tmp_path / "feed.pipe"
    os.mkfifo(pipe)
    json_path = tmp_path / "never.jsonl"
    proc = subprocess.Popen([*PYTHON_CLI, "track", str(pipe), "--box", "10,10,20,20", "--weights",
                             str(sharp_checkpoint), "--json", str(json_path), "--quiet"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLI_ENV,
                            preexec_fn=_as_from_a_terminal)
    try:
        deadline = time.monotonic() + SUBPROCESS_TIMEOUT_S  # hang guard: the model loads first
        while not _holds_open(proc.pid, pipe) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.3)  # well inside the wait
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stderr.splitlines() == ["siammask: interrupted"]
    assert not json_path.exists()


def test_ctl_with_a_malformed_endpoint_is_one_line(capfd):
    assert cli_in_process("ctl", "--control", "foo://bar", "list", capfd=capfd) == (2, [
        "siammask: error: control endpoint 'foo://bar' is not a ZeroMQ endpoint; use tcp://HOST:PORT or ipc:///path"])


@pytest.mark.parametrize("value", ["-1", "nan", "1e308", "0"])
def test_ctl_timeout_out_of_range_is_one_line(value, capfd):
    """Before: a traceback from ZeroMQ's receive timeout (nan, 1e308) or a wait that never was (-1)."""
    assert cli_in_process("ctl", f"--timeout={value}", "list", capfd=capfd) == (2, [
        f"siammask: error: --timeout '{value}' must be a number of seconds in (0, 86400]"])


@pytest.mark.parametrize("command", [["export"], ["train", "--config", "configs/train/lite.yaml"]])
def test_out_that_cannot_be_a_folder_is_one_line(tmp_path, command, capfd, monkeypatch):
    """`--out` on /proc/x or on an existing file: before, a traceback from mkdir."""
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    existing = tmp_path / "existing"
    existing.write_text("keep me\n")
    what = "export" if command[0] == "export" else "run"
    for out, why in (("/proc/x", "No such file or directory; pick a writable path"),
                     (str(existing), "a file has that name; pick another path")):
        assert cli_in_process(*command, "--out", out, capfd=capfd) == (2, [
            f"siammask: error: cannot create {what} folder '{out}': {why}"])
    assert existing.read_text() == "keep me\n"
