"""The pipeline's pieces without processes: the batched tracker step against Tracker.step, config
checks, the control protocol, message framing and the typed messages' codec, and the latency quantiles of
the summary line."""
from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import os
import re
import socket

import numpy as np
import pytest
import zmq

from siammask.commands.demo import DEMO_FRAMES, DEMO_INPUT, DEMO_OUT, DEMO_SEED, DEMO_SIZE
from siammask.config import CONFIG_DIR
from siammask.errors import UserError
from siammask.geometry.masks import box_corners
from siammask.io.annotate import draw_target
from siammask.io.results import result_record
from siammask.pipeline.config import (ConsoleConfig, CurveConfig, ModelConfig, PipelineConfig, StreamConfig, apply_cli,
                                      check_config, load_config, stream_from_dict)
from siammask.pipeline.control import parse_request
from siammask.pipeline.endpoints import check_stage_endpoint, is_loopback, private_dir
from siammask.pipeline.messages import (LOST, AddStream, AddTarget, BadMessage, Boxes, FrameHeader, Ready,
                                        RemoveStream, RemoveTarget, Reply, Result, SetPaused, StreamEnd, TargetAdded,
                                        TargetChanged, TargetFailed, decode, decode_frame, encode, recv, send)
from siammask.pipeline.security import write_keys
from siammask.pipeline.metrics import bucket_quantile
from siammask.pipeline.sink import Accounts, draw, event_message
from siammask.synthetic import make_sequence
from siammask.tracker import TrackResult

EXAMPLE = CONFIG_DIR / "pipeline" / "example.yaml"


def test_batch_over_streams_matches_tracker_step(lite_tracker):
    """Two streams of different sizes in one engine batch give what Tracker.step gives per stream."""
    tracker = lite_tracker
    a = make_sequence(num_frames=4, size=(160, 120), seed=3)
    b = make_sequence(num_frames=4, size=(200, 150), seed=5)
    ref_a = tracker.init(a[0].image, [a[0].box])
    ref_b = tracker.init(b[0].image, [b[0].box, (10.0, 12.0, 40.0, 30.0)])
    states = ref_a + ref_b
    for t in range(1, 4):
        ref_a, res_a = tracker.step(a[t].image, ref_a)
        ref_b, res_b = tracker.step(b[t].image, ref_b)
        frames = [a[t].image] * 1 + [b[t].image] * 2
        batch = tracker.search_batch(list(zip(frames, states)))
        picks = tracker.infer_batch(batch, states)
        out = [tracker.finish(f, s, picks[i]) for i, (f, s) in enumerate(zip(frames, states))]
        states = [state for state, _ in out]
        for (_, got), want in zip(out, res_a + res_b):
            np.testing.assert_allclose(got.box, want.box, atol=1e-3)
            assert got.score == pytest.approx(want.score, abs=1e-4)
            assert got.pos_yx == want.pos_yx
            assert np.logical_xor(got.mask, want.mask).sum() <= 0.001 * got.mask.size


def test_example_config_loads_and_unknown_keys_fail(tmp_path):
    cfg = load_config(str(EXAMPLE))
    # it runs as shipped after `siammask demo`: its stream is the demo's video, its box the demo's object
    truth = make_sequence(num_frames=DEMO_FRAMES, size=DEMO_SIZE, seed=DEMO_SEED)[0].box
    assert cfg.streams[0].id == "cam0" and cfg.streams[0].source == f"{DEMO_OUT}/{DEMO_INPUT}"
    assert cfg.streams[0].boxes == (tuple(float(v) for v in truth),)
    bad = tmp_path / "bad.yaml"
    bad.write_text("streams: []\npublsh: tcp://127.0.0.1:1\n")
    with pytest.raises(UserError, match="unknown key.*publsh"):
        load_config(str(bad))


@pytest.mark.parametrize("change, message", [
    ({"publish": "tcp://0.0.0.0:5556"}, "needs CURVE keys"),
    ({"control": "tcp://*:5557"}, "needs CURVE keys"),
    ({"control": "tcp://127.0.0.1:5557"}, "TCP endpoint every local user can reach, so it needs CURVE keys"),
    ({"streams": (StreamConfig("a", "{video}", endpoint="ipc:///etc/passwd"),)}, "outside serve's private folder"),
    ({"streams": (StreamConfig("a", "{video}", remote=True, endpoint="ipc:///tmp/../etc/x"),)},
     "outside serve's private folder"),
    ({"streams": (StreamConfig("a", "/dev/zero"),)}, "'/dev/zero' is not a video file, image folder or named pipe"),
    ({"streams": (StreamConfig("a", "/dev/null"),)}, "'/dev/null' is not a video file, image folder or named pipe"),
    ({"publish": "udp://127.0.0.1:1"}, "not a ZeroMQ endpoint"),
    ({"streams": (StreamConfig("a", "{video}"), StreamConfig("a", "{video}"))}, "more than once"),
    ({"streams": (StreamConfig("a", "missing.avi"),)}, "not found"),
    ({"streams": (StreamConfig("a", "{video}", boxes=((1.0, 2.0, 3.0),)),)}, "4 numbers"),
    ({"streams": (StreamConfig("a", "{video}", endpoint="tcp://10.1.2.3:6000"),)}, "needs CURVE keys"),
    ({"streams": (StreamConfig("a", "{video}", endpoint="tcp://127.0.0.1:*"),)}, "needs a port number, not '\\*'"),
    ({"streams": (StreamConfig("a", "{video}"), StreamConfig("b", "{video}")),
      "outputs": {"video": "out.mp4"}}, "needs '\\{stream\\}'"),
    ({"role": "capture", "streams": (StreamConfig("a", "{video}"),)}, "tcp:// endpoint"),
    ({"model": ModelConfig(weights="missing.pth")}, "weights 'missing.pth' not found"),
])
def test_config_mistakes_are_user_errors(change, message, synthetic_video):
    change = {k: tuple(dataclasses.replace(s, source=s.source.format(video=synthetic_video)) for s in v)
              if k == "streams" else v for k, v in change.items()}
    if "outputs" in change:
        change["outputs"] = dataclasses.replace(PipelineConfig().outputs, **change["outputs"])
    with pytest.raises(UserError, match=message):
        check_config(dataclasses.replace(PipelineConfig(), **change))


def test_publish_and_control_may_both_bind_any_port(synthetic_video, tmp_path):
    """Port '*' twice is two free ports, not one address bound twice."""
    write_keys(tmp_path)
    curve = CurveConfig(str(tmp_path / "server.key_secret"), str(tmp_path / "client.key_secret"),
                        str(tmp_path / "authorized"))
    check_config(PipelineConfig(streams=(StreamConfig("a", str(synthetic_video)),), publish="tcp://127.0.0.1:*",
                                control="tcp://127.0.0.1:*", curve=curve))
    with pytest.raises(UserError, match="must all differ"):
        check_config(PipelineConfig(streams=(StreamConfig("a", str(synthetic_video)),), publish="tcp://127.0.0.1:9",
                                    control="tcp://127.0.0.1:9", curve=curve))


def test_ipc_stream_endpoints_only_in_the_private_folder_and_never_over_a_file_or_live_socket(own_tmpdir,
                                                                                             synthetic_video):
    """What `ctl add-stream` sends: an ipc:// endpoint outside the 0700 private folder is refused;
    inside it, a path holding a file (binding would delete it) or a socket someone serves on is too."""
    folder = private_dir()
    assert folder == own_tmpdir / f"siammask-{os.getuid()}" and folder.stat().st_mode & 0o777 == 0o700
    cfg = PipelineConfig()
    video = str(synthetic_video)
    stream_from_dict({"id": "a", "source": video, "endpoint": f"ipc://{folder}/a.sock"}, cfg)
    (folder / "note").write_text("keep me")
    with pytest.raises(UserError, match="exists and is not a socket"):
        stream_from_dict({"id": "a", "source": video, "endpoint": f"ipc://{folder}/note"}, cfg)
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(folder / "live"))
        live.listen()
        with pytest.raises(UserError, match="is in use by a running program"):
            stream_from_dict({"id": "a", "source": video, "endpoint": f"ipc://{folder}/live"}, cfg)
    stream_from_dict({"id": "a", "source": video, "endpoint": f"ipc://{folder}/live"}, cfg)  # left over: may go
    (own_tmpdir / "outside").write_text("keep me")
    with pytest.raises(UserError, match="outside serve's private folder"):
        stream_from_dict({"id": "a", "source": video, "endpoint": f"ipc://{folder}/../outside"}, cfg)
    assert (folder / "note").read_text() == (own_tmpdir / "outside").read_text() == "keep me"


def test_a_tcp_stream_endpoint_from_ctl_must_be_configured(synthetic_video):
    """What `ctl add-stream` sends: a tcp:// endpoint only when the config names it (capture_endpoints,
    or a config stream's endpoint); a config entry that is not tcp://HOST:PORT is refused at start."""
    cfg = PipelineConfig(capture_endpoints=("tcp://10.0.0.5:5600",),
                         streams=(StreamConfig("cam", remote=True, endpoint="tcp://10.0.0.6:5601"),))
    for endpoint in ("tcp://10.0.0.5:5600", "tcp://10.0.0.6:5601"):
        assert stream_from_dict({"id": "a", "remote": True, "endpoint": endpoint}, cfg).endpoint == endpoint
    for stream in ({"id": "a", "remote": True, "endpoint": "tcp://10.0.0.5:22"},
                   {"id": "a", "source": str(synthetic_video), "endpoint": "tcp://127.0.0.1:5600"}):
        with pytest.raises(UserError, match=f"endpoint '{stream['endpoint']}' is not a capture host's endpoint"):
            stream_from_dict(stream, cfg)
    for entry, message in (("ipc:///tmp/x", "is not tcp://HOST:PORT"), ("tcp://10.0.0.5:*", "needs a port number")):
        with pytest.raises(UserError, match=re.escape(message)):
            check_config(PipelineConfig(capture_endpoints=(entry,)))


def test_a_private_folder_another_user_could_open_is_refused(own_tmpdir):
    folder = own_tmpdir / f"siammask-{os.getuid()}"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with pytest.raises(UserError, match="is not a folder that only you can open"):
        private_dir()


def test_command_line_overrides_config(synthetic_video):
    cfg = PipelineConfig(streams=(StreamConfig("cam", str(synthetic_video)),), publish="tcp://127.0.0.1:1",
                         console=ConsoleConfig(token="t" * 16))
    args = argparse.Namespace(source=str(synthetic_video), box=[(1.0, 2.0, 30.0, 40.0)], stream_id="x", loop=True,
                              console="9000", fps=50.0, publish="tcp://127.0.0.1:2", control=None, metrics_port=0,
                              preview_port=None, json=None, output=None, role=None, inference_delay_ms=None,
                              weights="w.pth", variant=None, hp=None, engine=None, device=None, precision=None,
                              redetect=False, threads=1, cluster=None)
    out = apply_cli(cfg, args)
    assert out.streams == (StreamConfig("x", str(synthetic_video), ((1.0, 2.0, 30.0, 40.0),), True, 50.0),)
    assert (out.publish, out.control, out.metrics_port) == ("tcp://127.0.0.1:2", cfg.control, 0)
    assert (out.model.weights, out.model.engine, out.model.threads, out.model.redetect) == ("w.pth", "auto", 1, False)
    assert out.console == ConsoleConfig(listen="9000", token="t" * 16)  # --console keeps the config's token


@pytest.mark.parametrize("yaml_model, argv, line", [
    ("{engine: onnx}", [], "{path}: model: engine: unknown engine 'onnx'; available: auto, torch, torch-compile, "
                           "onnxruntime, tensorrt"),
    ("{}", ["--engine", "onnx"], "engine: unknown engine 'onnx'; available: auto, torch, torch-compile, "
                                 "onnxruntime, tensorrt"),
])
def test_an_unknown_engine_is_refused_when_serves_config_loads(tmp_path, synthetic_video, capfd, yaml_model, argv,
                                                               line):
    """`siammask serve` (the real command line, in this process: nothing starts before the refusal)
    refused an unknown engine only once the inference process built it; now the config's load does,
    in one line naming the key, exit 2."""
    from siammask.cli import main

    path = tmp_path / "serve.yaml"
    path.write_text(f"streams: [{{id: a, source: {synthetic_video}}}]\nmodel: {yaml_model}\n")
    capfd.readouterr()
    status = main(["serve", "--config", str(path), *argv])
    assert (status, capfd.readouterr().err.splitlines()) == (2, [f"siammask: error: {line.format(path=path)}"])


@pytest.mark.parametrize("spin", [True, False])
def test_the_inference_process_takes_its_thread_settings_from_the_config(spin):
    """model.threads and model.spin reach the inference process before any session opens (here the
    weights are missing, so the stage ends as a worker that cannot load its model would)."""
    from siammask.pipeline.inference import InferenceSpec, StageSpec, run_inference
    from siammask.pipeline.transport import LinkSpec
    from siammask.threads import inference_spinning, inference_threads, set_inference_spinning, set_inference_threads

    link = LinkSpec("ipc:///nowhere", "ipc:///nowhere", "ipc:///nowhere", 1, 1, None)
    try:
        with pytest.raises(SystemExit):
            run_inference(InferenceSpec(ModelConfig(weights="missing.pth", threads=3, spin=spin),
                                        StageSpec((), (), 5, False), link))
        assert (inference_threads(), inference_spinning()) == (3, spin)
    finally:
        set_inference_threads(None)
        set_inference_spinning(None)


def test_model_spin_in_serves_config_is_a_bool(tmp_path, capfd):
    """A camera box's config is outside input: a wrong value is one line naming the key, exit 2."""
    from siammask.cli import main

    path = tmp_path / "serve.yaml"
    path.write_text("model: {spin: 3}\n")
    capfd.readouterr()
    assert main(["serve", "--config", str(path)]) == 2
    assert capfd.readouterr().err.splitlines() == [f"siammask: error: {path}: model: spin: expected bool, got 3"]


def test_a_stage_on_a_machine_that_joined_late_is_refused():
    """Cluster mode: every node was on this machine at start, so the stage sockets are on loopback;
    a worker or capture placed on a node of another machine would bind its address without CURVE
    (and could not reach serve): refused. With nodes elsewhere from the start, CURVE keys decide."""
    check_stage_endpoint("tcp://127.0.0.1:7000", "inference 1", local_only=True, curve=None)
    with pytest.raises(UserError, match="inference 1 was placed on 10.0.0.9, a machine that joined the cluster"):
        check_stage_endpoint("tcp://10.0.0.9:7000", "inference 1", local_only=True, curve=None)
    with pytest.raises(UserError, match="needs CURVE keys"):
        check_stage_endpoint("tcp://10.0.0.9:7000", "inference 1", local_only=False, curve=None)
    check_stage_endpoint("tcp://10.0.0.9:7000", "inference 1", local_only=False, curve=object())


def test_loopback_endpoints():
    assert is_loopback("tcp://127.0.0.1:1") and is_loopback("tcp://localhost:1") and is_loopback("tcp://[::1]:1")
    assert is_loopback("ipc:///tmp/x")
    assert not is_loopback("tcp://0.0.0.0:1") and not is_loopback("tcp://*:1") and not is_loopback("tcp://10.0.0.1:1")


@pytest.mark.parametrize("raw, message", [
    (b"not json", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"cmd": "explode"}', "unknown command"),
    (b'{"cmd": "add_target", "stream": "a"}', "missing: box"),
    (b'{"cmd": "list", "extra": 1}', "unknown: extra"),
    (b'{"cmd": "remove_target", "stream": "a", "target": "1"}', "target must be a int"),
    (b'{"cmd": "add_target", "stream": "a", "box": [1, 2, 3]}', "4 numbers"),
    (b'{"cmd": "pause", "stream": true}', "stream must be a str"),
])
def test_malformed_control_requests(raw, message):
    with pytest.raises(UserError, match=message):
        parse_request(raw)


def test_control_request_parses():
    req = parse_request(b'{"cmd": "add_target", "stream": "a", "box": [1, 2, 30, 40.5]}')
    assert req.cmd == "add_target" and req.args == {"stream": "a", "box": (1.0, 2.0, 30.0, 40.5)}


def test_frame_travels_as_raw_buffer():
    ctx = zmq.Context()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    try:
        pull.bind("inproc://frames")
        push.connect("inproc://frames")
        frame = np.arange(120 * 160 * 3, dtype=np.uint8).reshape(120, 160, 3)
        header = FrameHeader("a", 7, True, 25.0, 1, {"read": 1.5, "sent": 2.5}, 3)
        assert send(push, header, frame, block=True)
        got_header, got = recv(pull)
    finally:
        push.close(0), pull.close(0), ctx.term()
    assert got_header == header
    np.testing.assert_array_equal(got, frame)
    owner = got
    while isinstance(owner, np.ndarray):
        owner = owner.base
    assert isinstance(owner.obj, zmq.Frame)  # a view of the buffer ZeroMQ received into: no copy


MESSAGES = [
    FrameHeader("cam0", 812, False, 29.97, 2, {"read": 1.25, "sent": 1.5}, 4), StreamEnd("cam0"),
    AddStream(stream="b", endpoint="ipc:///tmp/x", paused=True, pending=((0, (1.0, 2.0, 30.0, 40.5)),), slot=3,
              registration=9, generation=2),
    RemoveStream(stream="b", generation=1), SetPaused(stream="b", paused=False, req=5),
    AddTarget(stream="b", target=2, box=(1.0, 2.0, 3.0, 4.0), req=6), RemoveTarget(stream="b", target=2),
    Ready(generation=7), Boxes(stream="a", frame=3, boxes=((0, (1.0, 2.0, 3.0, 4.0)), (4, (5.0, 6.0, 7.0, 8.0))),
                               states=((0, 0.9, 0.8, False), (4, 0.4, 0.1, True))),
    TargetChanged(stream="a", target=4, frame=3, time=1.25, change=LOST, box=(5.0, 6.0, 7.0, 8.0), score=0.4,
                  presence=0.1, generation=2),
    TargetAdded(stream="a", target=1, box=(1.0, 2.0, 3.0, 4.0), frame=0), TargetFailed(stream="a", target=1, error="no"),
    Reply(req=4, error="stream 'x' is not running"), Reply(req=5, stream="a", target=1, box=(1.0, 2.0, 3.0, 4.0), frame=9),
    Result("a", 3, 25.0, {"read": 1.0}, 160, 120, {"capture": 1, "inference": 2, "sink": 0}, 4,
           ({"frame": 3, "box": (1.0, 2.0, 3.0, 4.0), "mask": None, "target": 0},), 0, 1, 1, 0),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_decodes_to_what_was_encoded(msg):
    assert decode(encode(msg)) == (msg, None)


def frame_parts(header: dict | bytes, pixels: bytes | None = None) -> list[zmq.Frame]:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return [zmq.Frame(raw)] + ([zmq.Frame(pixels)] if pixels is not None else [])


GOOD = {"type": "FrameHeader", "stream": "a", "frame": 3, "first": False, "fps": 25.0, "run": 0,
        "t": {"read": 1.0, "sent": 2.0}, "capture_drops": 0, "pixels": ["|u1", [4, 5, 3]]}


@pytest.mark.parametrize("parts, why", [
    (frame_parts(b"\xff garbage"), "is not JSON"),
    (frame_parts(b"[" * 5000 + b"]" * 5000), "is not JSON"),
    (frame_parts(b"[1, 2]"), "is not a JSON object"),
    (frame_parts({**GOOD, "fps": "NaN"}, bytes(60)), "out-of-range"),
    (frame_parts(json.dumps(GOOD).replace("25.0", "NaN").encode(), bytes(60)), "is not JSON"),
    (frame_parts(json.dumps(GOOD).replace("25.0", "1e999").encode(), bytes(60)), "out-of-range"),
    (frame_parts({**GOOD, "frame": 2**62}, bytes(60)), "out-of-range"),
    (frame_parts({**GOOD, "frame": True}, bytes(60)), "out-of-range"),
    (frame_parts({**GOOD, "t": []}, bytes(60)), "out-of-range"),
    (frame_parts({**GOOD, "extra": 1}, bytes(60)), "out-of-range"),
    (frame_parts({k: v for k, v in GOOD.items() if k != "run"}, bytes(60)), "out-of-range"),
    (frame_parts(GOOD), "is not a frame or a stream end"),
    (frame_parts(GOOD, bytes(59)), "HxWx3 8-bit image"),
    (frame_parts({**GOOD, "pixels": ["<f8", [4, 5, 3]]}, bytes(480)), "HxWx3 8-bit image"),
    (frame_parts({**GOOD, "pixels": ["|u1", [1, 20, 3]]}, bytes(60)), "HxWx3 8-bit image"),
    (frame_parts({**GOOD, "pixels": ["|u1", [20, 3]]}, bytes(60)), "HxWx3 8-bit image"),
    (frame_parts({**GOOD, "pixels": "x"}, bytes(60)), "HxWx3 8-bit image"),
    (frame_parts({"type": "Ready", "generation": 1}), "is not a frame or a stream end"),
    (frame_parts({"type": "StreamEnd", "stream": 5}), "is not a frame or a stream end"),
    (frame_parts({"type": "StreamEnd", "stream": "a"}, b"x"), "is not a frame or a stream end"),
])
def test_a_capture_message_that_does_not_decode_is_a_bad_message(parts, why):
    """What a remote capture (any host) may send the inference stage: nothing but a BadMessage."""
    with pytest.raises(BadMessage, match=why):
        decode_frame(parts)


def test_capture_messages_decode_with_their_pixels():
    header, pixels = decode_frame(frame_parts(GOOD, bytes(range(60))))
    assert header == FrameHeader("a", 3, False, 25.0, 0, {"read": 1.0, "sent": 2.0}, 0)
    assert pixels.shape == (4, 5, 3) and pixels.dtype == np.uint8 and pixels[3, 4, 2] == 59
    assert decode_frame(frame_parts({"type": "StreamEnd", "stream": "a"})) == (StreamEnd("a"), None)


def test_a_reply_is_ok_without_an_error():
    assert Reply(req=1).ok and not Reply(req=1, error="box lies outside").ok


def test_bucket_quantile_interpolates_like_prometheus():
    buckets = [(0.01, 50.0), (0.02, 90.0), (0.05, 100.0), (float("inf"), 100.0)]
    assert bucket_quantile(0.5, buckets) == pytest.approx(0.01)
    assert bucket_quantile(0.7, buckets) == pytest.approx(0.015)
    assert bucket_quantile(0.99, buckets) == pytest.approx(0.047)
    assert bucket_quantile(0.5, [(0.01, 0.0)]) is None


def test_the_sink_publishes_an_event_by_stream_and_draws_a_lost_target_as_track_does():
    event = TargetChanged(stream="cam0", target=2, frame=9, time=1.5, change=LOST, box=(5.0, 6.0, 30.0, 20.0),
                          score=0.4, presence=0.1, generation=7)
    text = json.dumps(event_message(event))
    assert text.startswith('{"stream": "cam0"')  # a stream's prefix subscription gets its events
    assert json.loads(text) == {"stream": "cam0", "event": "lost", "target": 2, "frame": 9, "time": 1.5,
                                "box": [5.0, 6.0, 30.0, 20.0], "score": 0.4, "presence": 0.1}
    frame = np.full((60, 80, 3), 30, np.uint8)
    corners = box_corners(20.0, 16.0, 30.0, 20.0)
    lost = result_record(9, TrackResult((5.0, 6.0, 30.0, 20.0), corners, 0.4, 0.1, True, None, (-1, -1)), target=2)
    drawn = draw(frame, (lost,))
    np.testing.assert_array_equal(drawn, draw_target(frame, 2, corners, None, 0.4, lost=True))
    assert not np.array_equal(drawn, draw_target(frame, 2, corners, None, 0.4, lost=False))


def test_a_frame_the_killed_sink_had_not_published_is_counted_in_the_gap():
    """The last frame a sink published outlives it; one it was handling when killed is not published,
    so the next sink counts it with the frames lost in its queue: `dropped` adds up to the gap, and
    Prometheus counts those frames once, when the message that reports them is out."""
    from prometheus_client import REGISTRY

    def sink_drops() -> float:
        return REGISTRY.get_sample_value("siammask_dropped_frames_total", {"stream": "gap", "stage": "sink"}) or 0.0

    def result(frame: int) -> Result:
        return Result(stream="gap", frame=frame, fps=25.0, t={}, width=8, height=8,
                      dropped={"capture": 0, "inference": 0, "sink": 0}, paused_frames=0, targets=(), slot=1,
                      registration=3, generation=0, capture_run=0)
    shared = mp.Array("q", [-1] * 4, lock=False)
    first = Accounts(shared)
    for frame in (14, 15):
        first.count(r := result(frame))
        first.published(r)
    first.count(result(16))  # killed before 16 went out
    second = Accounts(shared)  # the restarted sink
    second.count(r := result(17))  # killed too, before 17 went out (it counted 1 frame lost, not yet reported)
    third = Accounts(shared)
    before = sink_drops()
    third.count(r := result(18))
    assert r.dropped == {"capture": 0, "inference": 0, "sink": 2}
    assert sink_drops() == before
    third.published(r)
    assert sink_drops() == before + 2
    third.count(r := result(19))
    assert r.dropped["sink"] == 0


def test_stage_sockets_on_loopback_for_another_users_ray_need_curve(tmp_path):
    """A Ray cluster run by another user reaches serve's stages over loopback tcp, which every local
    user reaches too: refused without CURVE keys, one line naming the fix; with keys it passes."""
    from siammask.pipeline.config import CurveConfig
    from siammask.pipeline.endpoints import check_loopback_stages

    with pytest.raises(UserError, match="open to every local user: run 'siammask keys --out DIR'") as refusal:
        check_loopback_stages(None)
    assert "\n" not in str(refusal.value)
    check_loopback_stages(CurveConfig(str(tmp_path / "s"), str(tmp_path / "c"), str(tmp_path / "a")))
