"""Benchmark loaders: each reads one layout into Box-, Region- or MaskSequences and raises UserError
with a one-line reason when the data is missing or malformed."""
from .common import BoxSequence, MaskSequence, RegionSequence
from .davis import load_davis
from .lt import load_lt
from .otb import load_otb
from .vot import load_vot
from .ytbvos import load_ytbvos

__all__ = ["BoxSequence", "MaskSequence", "RegionSequence", "load_davis", "load_lt", "load_otb", "load_vot", "load_ytbvos"]
