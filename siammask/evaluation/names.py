"""What `siammask eval`'s command line names, apart from the code behind it so that building the
parser imports neither OpenCV nor numpy: OpenCV's baseline trackers and where TrackerNano's graphs
are looked for (baselines.py), and the sequence lengths VOT2016's EAO averages over (eao.py)."""
from __future__ import annotations

from pathlib import Path

BASELINES = ("csrt", "kcf", "nano")
DEFAULT_NANO_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "pretrained" / "nanotrack"
VOT2016_INTERVAL = (108, 371)
