"""OpenCV's own trackers (CSRT, KCF, TrackerNano) behind the interface the protocols call, so that
`siammask eval --baseline` scores them exactly as it scores SiamMask.

They report an integer box only: the box is also the rotated box, and the box filled is the mask
(what a box-only tracker gives for J and F). Each target holds its own OpenCV tracker object,
created anew on every init (a VOT re-initialisation starts from scratch, as it does for ours).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..tracker import TrackResult
from ..validate import box_in_frame
from .names import BASELINES, DEFAULT_NANO_DIR
from .regions import box_polygon

LABELS = {"csrt": "OpenCV CSRT", "kcf": "OpenCV KCF", "nano": "OpenCV TrackerNano"}
# The NanoTrack V2 graphs OpenCV's TrackerNano runs: backbone, then the neck and head.
NANO_FILES = ("nanotrackv2_nanotrack_backbone_sim.onnx", "nanotrackv2_nanotrack_head_sim.onnx")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class OpenCVState:
    """One target: its OpenCV tracker object (which OpenCV updates in place) and its last box."""

    tracker: cv2.Tracker
    box: Box


def nano_files(folder: Path) -> tuple[Path, Path]:
    """The two TrackerNano graphs in `folder`, or a UserError that names what is missing."""
    paths = tuple(folder / name for name in NANO_FILES)
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise UserError(f"TrackerNano needs {' and '.join(NANO_FILES)} in '{folder}' (--nano-dir); "
                        f"missing: {', '.join(missing)}")
    return paths[0], paths[1]


class OpenCVTracker:
    """init/step like siammask.tracker.Tracker, for any number of targets, each tracked on its own."""

    def __init__(self, name: str, nano_dir: Path = DEFAULT_NANO_DIR) -> None:
        if name not in BASELINES:
            raise UserError(f"unknown baseline '{name}'; choose one of {', '.join(BASELINES)}")
        self.name = name
        self.label = LABELS[name]
        self._create = _factory(name, nano_dir)
        self._create()  # fail here, once, on a broken install or unreadable graphs: not mid-run

    def init(self, frame: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[OpenCVState]:
        """A new OpenCV tracker per box (x, y, w, h), started from the box rounded to whole pixels."""
        states = []
        for box in boxes:
            start = _whole_pixels(box_in_frame(box, (frame.shape[1], frame.shape[0])))
            tracker = self._create()
            tracker.init(frame, start)
            states.append(OpenCVState(tracker, start))
        return states

    def step(self, frame: np.ndarray, states: Sequence[OpenCVState]) -> tuple[list[OpenCVState], list[TrackResult]]:
        """Update every target; a target OpenCV cannot locate keeps its last box and is reported lost."""
        new_states, results = [], []
        for state in states:
            found, box = state.tracker.update(frame)
            box = tuple(int(v) for v in box) if found else state.box
            score = float(state.tracker.getTrackingScore()) if self.name == "nano" else float(found)
            new_states.append(OpenCVState(state.tracker, box))
            results.append(TrackResult(tuple(float(v) for v in box), box_polygon(box), score, score, not found,
                                       box_mask(box, frame.shape[:2]), (-1, -1)))
        return new_states, results


def box_mask(box: Box, shape: tuple[int, int]) -> np.ndarray:
    """HxW bool: the pixels of an integer x, y, w, h box that lie in the frame."""
    x, y, w, h = box
    mask = np.zeros(shape, bool)
    mask[max(0, y):max(0, y + h), max(0, x):max(0, x + w)] = True
    return mask


def _whole_pixels(box: tuple[float, float, float, float]) -> Box:
    """OpenCV takes an integer rectangle: corners rounded, at least one pixel wide and high."""
    x, y, w, h = box
    left, top = round(x), round(y)
    return left, top, max(1, round(x + w) - left), max(1, round(y + h) - top)


def _factory(name: str, nano_dir: Path) -> Callable[[], cv2.Tracker]:
    """A function that makes a fresh OpenCV tracker of this kind."""
    kind = {"csrt": "TrackerCSRT", "kcf": "TrackerKCF", "nano": "TrackerNano"}[name]
    if not hasattr(cv2, kind):
        raise UserError(f"this OpenCV ({cv2.__version__}) has no {kind}: CSRT and KCF come with "
                        "opencv-contrib-python-headless, which replaces opencv-python-headless "
                        "(pip uninstall opencv-python-headless && pip install --force-reinstall --no-deps "
                        "opencv-contrib-python-headless)")
    if name != "nano":
        return getattr(cv2, kind).create
    params = cv2.TrackerNano_Params()
    params.backbone, params.neckhead = (str(p) for p in nano_files(nano_dir))

    def create() -> cv2.Tracker:
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # its DNN warns about targets
        try:
            return cv2.TrackerNano.create(params)
        except cv2.error as error:
            raise UserError(f"OpenCV cannot load the TrackerNano graphs in '{nano_dir}': "
                            f"{str(error).strip().splitlines()[-1]}") from None
        finally:
            cv2.utils.logging.setLogLevel(level)

    return create
