"""What a regular install holds: one `siammask` namespace (the repository's engines/, export/,
pipeline/ and configs/ folders map into it), the presets and the shipped weights as package data,
and no import of the bare folder names anywhere in the repository."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from siammask.config import CONFIG_DIR, HP_PRESETS
from siammask.engines.sidecar import SIDECAR
from siammask.export.onnx_export import FILES

from package_layout import ROOT, imports, package_dirs

BARE = ("engines", "export", "pipeline", "configs")


def test_setup_cfg_lists_every_package_folder():
    """A new sub-package missing from the explicit list would silently be left out of the wheel."""
    listed = package_dirs()
    assert all((folder / "__init__.py").is_file() for folder in listed.values()), listed
    on_disk = {d.parent for root in listed.values() for d in root.rglob("__init__.py")
               if "__pycache__" not in d.parts}
    assert on_disk == set(listed.values())
    assert {name.split(".")[0] for name in listed} == {"siammask"}


def test_presets_are_read_from_the_package():
    assert (CONFIG_DIR / "hp").is_dir()
    for name in HP_PRESETS:
        assert (CONFIG_DIR / "hp" / f"{name}.yaml").is_file()
    # the repository folder configs/ is what the package siammask.configs is made of
    assert Path(str(CONFIG_DIR)).resolve() == (ROOT / "configs").resolve()


def test_nothing_imports_the_bare_folder_names():
    offenders = []
    for folder in ("siammask", *BARE[:3], "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for line, module in imports(path):
                if module.split(".")[0] in BARE:
                    offenders.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert offenders == []


def test_pipeline_readme_names_each_module_and_only_real_ones():
    table = [line for line in (ROOT / "pipeline" / "README.md").read_text().splitlines() if line.startswith("| `")]
    named = {name for line in table for name in re.findall(r"`(\w+\.py)`", line.split("|")[1])}
    assert named == {p.name for p in (ROOT / "pipeline").glob("*.py")} - {"__init__.py"}



def test_the_readme_and_ci_install_torchs_cpu_build_the_same_way():
    """The README's first set-up command and .ci/run take torch from PyTorch's CPU index, with one pin
    (PyPI's Linux torch is the CUDA build, ~3 GB of nvidia-* libraries a GPU-less box never uses)."""
    first = next(line.strip() for line in (ROOT / "README.md").read_text().splitlines()
                 if line.startswith("    pip install torch"))
    ci = next(line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
              if "pip install" in line and " torch==" in line)
    pin = re.search(r"torch==\S+ --index-url https://download\.pytorch\.org/whl/cpu\b", first)
    assert pin, first
    assert pin.group(0) in ci
    assert first.endswith('pip install -e ".[torch]" && siammask demo')

@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout (building in place would leave build/ behind),
    offline with the installed setuptools and wheel (both in the `test` extra)."""
    pytest.importorskip("wheel", reason="the 'wheel' package (pip install -e '.[test]') builds the wheel")
    src = tmp_path_factory.mktemp("src") / "siammask"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", "runs", "out"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(src)], check=True, capture_output=True)
    wheels = list(out.glob("siammask-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_installs_one_namespace_with_presets_and_weights(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert zf.read(top_level).decode().split() == ["siammask"]
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"siammask"}
    for name in HP_PRESETS:
        assert f"siammask/configs/hp/{name}.yaml" in names
    assert "siammask/configs/pipeline/example.yaml" in names
    static = {f"siammask/pipeline/console/static/{p.name}" for p in (ROOT / "pipeline" / "console" / "static").iterdir()}
    assert len(static) == 3 and static <= set(names)  # the console's page (html, css, js) ships with the package
    assert "siammask/pipeline/console/server.py" in names
    for folder in BARE[:3]:
        expected = {f"siammask/{folder}/{p.name}" for p in (ROOT / folder).glob("*.py")}
        assert expected and expected <= set(names)
    weights = {p.name for p in (ROOT / "siammask" / "weights").iterdir() if p.is_file()}
    assert weights and {f"siammask/weights/{w}" for w in weights} <= set(names)
    # the default weights' graphs, exported by setup.py's build hook: tracking with them needs no torch
    graphs = {f"siammask/weights/default-onnx/{f}" for f in (SIDECAR, *FILES.values())}
    assert graphs <= set(names)
