"""The build hook that puts the default weights' ONNX graphs into the wheel.

A wheel carries siammask/weights/default-onnx/: the shipped default weights exported and verified
against PyTorch by `siammask export`, with their sidecar and checksums, so that `siammask track`
and `serve` with the default weights need no torch where the wheel is installed (siammask.api).
Exporting needs torch and onnx in the build environment: build releases with
`python -m build --wheel --no-isolation` where they are installed (.ci/wheel_check does, and checks
the graphs are there). Without them, and for editable installs (which run from the checkout, where
the .pth is exported on first use instead), the wheel is built without the graphs, with a warning."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

GRAPHS = Path("siammask", "weights", "default-onnx")
EXPORT_NEEDS = ("torch", "onnx")


class BuildPyWithGraphs(build_py):
    """build_py, then `siammask export` of the default weights run on the built package itself."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        missing = [m for m in EXPORT_NEEDS if importlib.util.find_spec(m) is None]
        if missing:
            print(f"siammask build: WARNING: {', '.join(missing)} not installed here; the wheel has no prebuilt "
                  "graphs of the default weights, which then need torch to run", file=sys.stderr)
            return
        # PYTHONPATH puts the built package ahead of any installed siammask (an editable install's
        # finder comes after the path); no bytecode is written into what the wheel packs.
        env = {**os.environ, "PYTHONPATH": os.path.abspath(self.build_lib), "PYTHONDONTWRITEBYTECODE": "1"}
        out = Path(self.build_lib) / GRAPHS
        subprocess.run([sys.executable, "-m", "siammask.cli", "export", "--out", str(out), "--quiet"],
                       env=env, check=True)


setup(cmdclass={"build_py": BuildPyWithGraphs})
