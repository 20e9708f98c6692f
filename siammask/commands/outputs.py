"""Tracking a source into the output files (JSON lines, mask PNGs, annotated video) with a progress
bar and Ctrl-C handling: what `siammask track` runs and `siammask demo` reuses, kept out of both so no
command imports from another."""
from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from ..validate import box_in_frame


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """Ctrl-C / SIGTERM set an event checked between frames, so a frame's JSON line, mask and video
    frame are always written together and every output is closed cleanly."""
    stop = threading.Event()
    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in handled}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _write_frame(fr, jsonl, masks, video) -> None:
    """One frame's JSON lines, mask PNGs and annotated video frame, all targets."""
    from ..io.annotate import draw_target
    from ..io.results import result_record

    canvas = fr.frame
    for t, r in enumerate(fr.results):
        if jsonl:
            jsonl.write(result_record(fr.index, r, target=t))
        if masks and r.mask is not None:
            masks[t].write(fr.index, r.mask)
        if video:
            canvas = draw_target(canvas, t, r.polygon, r.mask, r.score, r.lost)
    if video:
        video.write(canvas)


def _progress_bar(total: int | None):
    """tqdm's bar on stderr. Imported only when shown: with -q, tqdm (and the importlib.metadata it
    reads its version with) is not imported before the first result (~20-35 ms, benchmarks/RESULTS.md)."""
    from tqdm import tqdm

    return tqdm(desc="tracking", unit="frame", total=total, file=sys.stderr)


def track_to_outputs(source_spec: str, boxes, tracker, json_path: str | None, video_path: str | None,
                     masks_dir: str | None, quiet: bool = False, on_frame=None) -> int:
    """Track `boxes` through a source into the requested outputs; returns the exit status.
    `on_frame(FrameResults)` sees every frame (the demo scores itself against the truth)."""
    from ..io.results import JsonlWriter, MaskDirWriter, VideoWriter, check_output_folder
    from ..io.sources import open_source
    from ..video import track_frames

    count = 0
    with ExitStack() as stack:
        # Bad output paths fail at once, but nothing is created before the source and the boxes
        # have passed: a refused run leaves no empty files behind.
        if json_path:
            check_output_folder(json_path, "results")
        if video_path:
            VideoWriter(video_path)  # checks the suffix and folder; opens nothing
        source = stack.enter_context(open_source(source_spec))
        for box in boxes:
            box_in_frame(box, source.frame_size)
        masks = [stack.enter_context(MaskDirWriter(Path(masks_dir) / (str(t) if len(boxes) > 1 else "")))
                 for t in range(len(boxes))] if masks_dir else None
        video = stack.enter_context(VideoWriter(video_path, fps=source.fps or 25.0)) if video_path else None
        jsonl = stack.enter_context(JsonlWriter(json_path)) if json_path else None
        bar = None if quiet else stack.enter_context(_progress_bar(source.total))
        with _stop_on_signals() as stop:
            for fr in track_frames(source, tracker, boxes):
                _write_frame(fr, jsonl, masks, video)
                if on_frame:
                    on_frame(fr)
                count += 1
                if bar is not None:  # tqdm's own truth value is its total
                    bar.update(1)
                if stop.is_set():
                    break
    if stop.is_set():
        print(f"siammask: interrupted after {count} frames; outputs written so far are kept", file=sys.stderr)
        return 130
    print(f"siammask: tracked {count} frames, {len(boxes)} target(s)", file=sys.stderr)
    return 0
