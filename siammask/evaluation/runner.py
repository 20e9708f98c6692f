"""Run a dataset through its protocol, resumably, and write the report.

Layout of OUT:
  run.json               the settings of the run; a later run into OUT must use the same ones
  sequences/SEQ.json     one finished sequence (metrics, speed, per-frame detail); never recomputed
  results.json / .md     per-sequence and overall results, rewritten at the end of every run
  *.png                  plots
  masks/SEQ/NNNNN.png    predicted masks in DAVIS layout (--save-masks)
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from ..errors import UserError
from ..io.sources import ImageFolderSource
from . import lt_protocol, ope_protocol, vos_protocol, vot_protocol
from .data import load_davis, load_lt, load_otb, load_vot, load_ytbvos
from .report import markdown_table, write_json
from .timing import SteppingTracker, TimedTracker, speed

log = logging.getLogger(__name__)


class ProgressBar(Protocol):
    """What the runner reports progress to (a tqdm bar fits; the command owns the bar)."""

    def update(self, n: int) -> object: ...

    def set_postfix_str(self, s: str) -> object: ...


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


def _no_progress(total: int) -> AbstractContextManager[ProgressBar]:
    return nullcontext(_NoBar())


@dataclass(frozen=True)
class Benchmark:
    """How to read a dataset and which protocol scores it."""

    load: Callable[..., list]
    protocol: ModuleType  # run(tracker, seq, frames, masks), overall(records, ...), plot(...), COLUMNS


BENCHMARKS = {
    "vot": Benchmark(load_vot, vot_protocol),
    "otb": Benchmark(load_otb, ope_protocol),
    "uav": Benchmark(load_otb, ope_protocol),
    "davis": Benchmark(load_davis, vos_protocol),
    "ytb_vos": Benchmark(load_ytbvos, vos_protocol),
    "lt": Benchmark(load_lt, lt_protocol),
}


def evaluate(tracker: SteppingTracker, dataset: str, root: Path, out: Path, settings: dict[str, Any], *,
             label: str = "SiamMask", save_masks: bool = False, load_options: dict[str, Any] | None = None,
             overall_options: dict[str, Any] | None = None,
             progress: Callable[[int], AbstractContextManager[ProgressBar]] = _no_progress) -> dict:
    """Evaluate every sequence not yet finished in `out`, then summarise all of them; returns
    results.json. `label` names the tracker in results.json and results.md, so reports can put
    trackers side by side; `progress(total_frames)` opens the progress bar the caller shows."""
    bench = BENCHMARKS[dataset]
    if not root.is_dir():
        raise UserError(f"dataset root '{root}' is not a folder")
    sequences = bench.load(root, **(load_options or {}))
    _claim(out, settings)
    done = {s.name for s in sequences if _record_path(out, s.name).is_file()}
    if done:
        log.warning("eval: %d of %d sequences already done in '%s', reusing them", len(done), len(sequences), out)
    todo_frames = sum(len(s.frames) for s in sequences if s.name not in done)
    records = []
    with progress(todo_frames) as bar:
        for seq in sequences:
            path = _record_path(out, seq.name)
            if not path.is_file():
                bar.set_postfix_str(seq.name)
                write_json(path, _run_sequence(tracker, bench.protocol, seq, out if save_masks else None, bar.update))
            records.append(json.loads(path.read_text()))
    return _summarise(bench.protocol, dataset, label, records, out, settings, overall_options or {})


def _run_sequence(tracker: SteppingTracker, protocol: ModuleType, seq: Any, out: Path | None,
                  advance: Callable[[int], object]) -> dict:
    timed = TimedTracker(tracker)
    frames = _counted(ImageFolderSource(seq.frames[0].parent, list(seq.frames)), advance)
    record = protocol.run(timed, seq, frames, out / "masks" / seq.name if out else None)
    return {"name": seq.name, "frames": len(seq.frames), **record, "speed": speed(timed.step_ms),
            "step_ms": timed.step_ms}


def _summarise(protocol: ModuleType, dataset: str, label: str, records: list[dict], out: Path,
               settings: dict[str, Any], options: dict[str, Any]) -> dict:
    summary = {**protocol.overall(records, **options), "frames": sum(r["frames"] for r in records),
               **speed([ms for r in records for ms in r["step_ms"]])}
    results = {"dataset": dataset, "tracker": label, "settings": settings,
               "overall": summary,
               "sequences": [{"name": r["name"], "frames": r["frames"], "metrics": r["metrics"], "speed": r["speed"]}
                             for r in records]}
    write_json(out / "results.json", results)
    results = json.loads((out / "results.json").read_text())
    table = markdown_table(results["sequences"], results["overall"], protocol.COLUMNS)  # as `siammask eval` prints it
    (out / "results.md").write_text(f"# {dataset} results: {label}\n\n{table}")
    plots = protocol.plot(records, results["overall"], out)
    log.info("eval: wrote %s, %s and %s", out / "results.json", out / "results.md", ", ".join(p.name for p in plots))
    return results


def _claim(out: Path, settings: dict[str, Any]) -> None:
    """Record the settings in OUT, or check they match those of the run that wrote OUT before."""
    path = out / "run.json"
    settings = json.loads(json.dumps(settings))  # compare like with like: as read back from JSON
    if path.is_file():
        before = json.loads(path.read_text())
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            raise UserError(f"'{out}' holds results of a run with other settings ({', '.join(changed)}); "
                            "pass a new --out, or delete that folder to start over")
        return
    try:
        write_json(path, settings)
    except OSError as error:
        raise UserError(f"cannot write to output folder '{out}': {error.strerror}") from None


def _record_path(out: Path, name: str) -> Path:
    return out / "sequences" / f"{name}.json"


def _counted(frames: ImageFolderSource, advance: Callable[[int], object]) -> Iterator[np.ndarray]:
    """The frames, ticking the progress bar once each."""
    for frame in frames:
        yield frame
        advance(1)
