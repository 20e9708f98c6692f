"""What `siammask serve` costs and sustains, measured with real processes on this machine.

1. latency: the same 720p frames tracked in-process (Tracker.step + the JSON record, as `siammask
   track --json` does) and through serve (capture -> inference -> sink -> a ZeroMQ subscriber), the
   source paced well below the tracker's speed so nothing queues. The pipeline's own cost per frame
   is the subscriber's receive time minus the capture timestamp, minus the frame's tracker work
   (preprocess + infer + postprocess, timed inside the inference stage).
2. throughput: 1, 2 and 4 looping 720p MJPEG streams (one target each) offered at --offer-fps each;
   results per second received by a subscriber, frames dropped (newest wins), CPU cores each
   process used; and, for reference, one in-process batched Tracker.step over as many targets.
3. memory: RSS of serve and all its stage processes, sampled while one stream loops for --rss-s.

Speed does not depend on the weight values, so seeded random weights of --variant are used.

    python benchmarks/bench_pipeline.py [--variant lite] [--frames 150] [--seconds 30] [--rss-s 240] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml
import zmq

from siammask.checkpoint import save_checkpoint
from siammask.api import load_tracker
from siammask.io.results import result_record
from siammask.model import build_model
from siammask.pipeline import messages
from siammask.pipeline.control import request
from siammask.pipeline.endpoints import default_control
from siammask.synthetic import make_sequence

SIZE = (1280, 720)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_mjpeg(frames, path: Path, size: tuple[int, int] = SIZE) -> Path:
    """MJPEG, as cameras send it: decoding costs about 2 ms a 720p frame here (lossless FFV1: about 45 ms,
    which would make every capture process slower than the tracker)."""
    writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
    for frame in frames:
        writer.write(frame.image)
    writer.release()
    return path


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds so far of each named process."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {"p50": round(float(np.percentile(arr, 50)), 2), "p99": round(float(np.percentile(arr, 99)), 2),
            "n": len(values)}


def in_process(weights: Path, frames, box, threads: int, targets: int = 1) -> list[float]:
    """Milliseconds per frame of Tracker.step + result_record with mask RLE for `targets` targets."""
    torch.set_num_threads(threads)
    tracker = load_tracker(weights)
    states = tracker.init(frames[0].image, [box] * targets)
    times = []
    for i, frame in enumerate(frames[1:], 1):
        start = time.perf_counter()
        states, results = tracker.step(frame.image, states)
        for t, r in enumerate(results):
            json.dumps(result_record(i, r, target=t))
        times.append((time.perf_counter() - start) * 1000)
    return times


class Served:
    """`siammask serve --config` in a subprocess, and a subscriber on its results."""

    def __init__(self, workdir: Path, config: dict) -> None:
        path = workdir / "serve.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log = open(workdir / "serve.log", "w")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "siammask.cli", "serve", "--config", str(path)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.control = default_control()  # the private ipc socket: serve runs with this environment
        self.ctx = zmq.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.rcvhwm = 10000
        self.sub.connect(config["publish"])

    def receive(self, seconds: float) -> list[tuple[float, dict]]:
        """(receive time, message) for `seconds`."""
        out, end = [], time.time() + seconds
        while time.time() < end:
            if self.sub.poll(100):
                raw = self.sub.recv()
                out.append((time.time(), json.loads(raw)))
        return out

    def wait_first(self, timeout_s: float = 300) -> None:
        if not self.sub.poll(int(timeout_s * 1000)):
            raise RuntimeError("serve published nothing; see serve.log")
        self.sub.recv()

    def stop(self) -> None:
        self.sub.close(0)
        self.ctx.term()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self.log.close()


def serve_config(streams: list[dict], weights: Path, threads: int) -> dict:
    return {"streams": streams, "model": {"weights": str(weights), "threads": threads},
            "publish": f"tcp://127.0.0.1:{free_port()}",
            "metrics_port": 0, "log_interval_s": 0}


def pipeline_latency(workdir: Path, video: Path, weights: Path, box, threads: int, fps: float,
                     seconds: float) -> dict:
    served = Served(workdir, serve_config([{"id": "a", "source": str(video), "loop": True, "fps": fps,
                                            "boxes": [list(box)]}], weights, threads))
    try:
        served.wait_first()
        msgs = served.receive(seconds)
    finally:
        served.stop()
    work = [sum(m["stages_ms"][k] for k in ("preprocess", "infer", "postprocess")) for _, m in msgs]
    e2e = [(t - m["capture_ts"]) * 1000 for t, m in msgs]
    drops = sum(sum(m["dropped"].values()) for _, m in msgs)
    stages = {k: percentiles([m["stages_ms"][k] for _, m in msgs]) for k in msgs[0][1]["stages_ms"]}
    return {"fps": fps, "end_to_end_ms": percentiles(e2e), "tracker_work_ms": percentiles(work),
            "added_ms": percentiles([a - b for a, b in zip(e2e, work)]), "dropped": drops, "stages_ms": stages}


def throughput(workdir: Path, video: Path, weights: Path, box, threads: int, streams: int, offer_fps: float,
               seconds: float) -> dict:
    served = Served(workdir, serve_config([{"id": f"s{i}", "source": str(video), "loop": True, "fps": offer_fps,
                                            "boxes": [list(box)]} for i in range(streams)], weights, threads))
    try:
        served.wait_first()
        served.receive(3.0)  # every stream started
        pids = request(served.control, {"cmd": "list"}, None, 30)["processes"]
        pids["supervisor"] = served.proc.pid
        before, start = cpu_seconds(pids), time.time()
        msgs = served.receive(seconds)
        after, elapsed = cpu_seconds(pids), time.time() - start
    finally:
        served.stop()
    cores = {name: round((after[name] - before[name]) / elapsed, 2) for name in after if name in before}
    per_stream = {}
    for _, m in msgs:
        per_stream.setdefault(m["stream"], []).append(m)
    return {"streams": streams, "offered_fps_per_stream": offer_fps,
            "results_per_s": round(len(msgs) / seconds, 2),
            "per_stream_fps": {s: round(len(v) / seconds, 2) for s, v in sorted(per_stream.items())},
            "dropped": sum(sum(m["dropped"].values()) for _, m in msgs),
            "latency_ms": percentiles([(t - m["capture_ts"]) * 1000 for t, m in msgs]),
            "cpu_cores_used": cores}


def ipc_hop(frame: np.ndarray, count: int = 200) -> dict:
    """One frame through a PUSH/PULL pair over ipc:// (what each extra stage boundary would cost)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-hop-"))
    ctx = zmq.Context()
    push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
    pull.bind(f"ipc://{folder}/hop")
    push.connect(f"ipc://{folder}/hop")
    header = messages.FrameHeader("a", 0, False, 25.0, 0, {}, 0)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        messages.send(push, header, frame, block=True)
        messages.recv(pull)  # the frame as a view of the received buffer
        times.append((time.perf_counter() - start) * 1000)
    push.close(0), pull.close(0), ctx.term()
    (folder / "hop").unlink(missing_ok=True)
    folder.rmdir()
    return percentiles(times[10:])


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and every process below it."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, frontier = {pid}, {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - tree
        tree |= frontier
    total = 0
    for p in tree:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        total += next((int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS:")), 0)
    return total / 1024


def memory(workdir: Path, video: Path, weights: Path, box, threads: int, seconds: float) -> dict:
    served = Served(workdir, serve_config([{"id": "a", "source": str(video), "loop": True, "boxes": [list(box)]}],
                                          weights, threads))
    samples = []
    try:
        served.wait_first()
        start = time.time()
        count = 0
        while time.time() - start < seconds:
            count += len(served.receive(10.0))
            samples.append((round(time.time() - start), round(tree_rss_mb(served.proc.pid), 1)))
    finally:
        served.stop()
    first, last = samples[0][1], samples[-1][1]
    return {"seconds": seconds, "results": count, "rss_mb_first": first, "rss_mb_last": last,
            "rss_mb_max": max(s[1] for s in samples), "samples": samples}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="lite", choices=["lite", "sharp"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads, in-process and in serve")
    parser.add_argument("--frames", type=int, default=60, help="720p frames in the looping test video")
    parser.add_argument("--seconds", type=float, default=30.0, help="measuring time of each serve run")
    parser.add_argument("--offer-fps", type=float, default=30.0, help="frames offered per stream (throughput)")
    parser.add_argument("--rss-s", type=float, default=240.0, help="how long the memory run loops")
    parser.add_argument("--parts", default="latency,throughput,memory", help="which measurements to run")
    parser.add_argument("--json", help="write the numbers as JSON here")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    torch.manual_seed(0)
    weights = save_checkpoint(build_model(args.variant).eval(), work / "model.pth", config={"hp": "davis"})
    frames = make_sequence(num_frames=args.frames, size=SIZE, seed=0)
    video = write_mjpeg(frames, work / "720p.avi")
    box = frames[0].box

    report: dict = {"variant": args.variant, "threads": args.threads, "frame": f"{SIZE[0]}x{SIZE[1]}"}
    step = in_process(weights, frames, box, args.threads)
    report["in_process_ms"] = percentiles(step[3:])
    report["ipc_hop_720p_ms"] = ipc_hop(frames[1].image)
    print(f"one 720p frame over ipc: {report['ipc_hop_720p_ms']}", flush=True)
    fps = round(min(25.0, 500.0 / statistics.median(step)), 1)  # half the tracker's speed: nothing queues
    print(f"in-process: {report['in_process_ms']}; pacing the latency run at {fps} fps", flush=True)
    if "latency" in parts:
        report["latency"] = pipeline_latency(work, video, weights, box, args.threads, fps, args.seconds)
        print("latency:", json.dumps(report["latency"]), flush=True)
    if "throughput" in parts:
        report["throughput"] = []
        for n in (1, 2, 4):
            row = throughput(work, video, weights, box, args.threads, n, args.offer_fps, args.seconds)
            batch = statistics.median(in_process(weights, frames, box, args.threads, targets=n)[3:])
            row["in_process_fps"] = round(1000 * n / batch, 2)  # one batched step for n targets, per target
            report["throughput"].append(row)
            print("throughput:", json.dumps(row), flush=True)
    if "memory" in parts:
        report["memory"] = memory(work, video, weights, box, args.threads, args.rss_s)
        print("memory:", json.dumps({k: v for k, v in report["memory"].items() if k != "samples"}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
