"""The occlusion modes of `siammask dataset occlude`, apart from their drawing (occlude.py) so that
building the command line imports neither OpenCV nor numpy."""

MODES = ("grey", "noise", "patch", "occluder", "cut", "exit")
NEEDS_OTHER = ("occluder", "cut")  # the modes that paste frames of another sequence
