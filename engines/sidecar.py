"""The JSON file next to exported graphs: what they are and a checksum of each, so an engine can
refuse a directory whose files are missing, corrupt, or of another variant before running it.
Written by `siammask export`, read by the graph back ends: with graph_io.py, the export-directory
contract, kept here beside its readers."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from siammask.errors import UserError
from siammask.variants import VARIANTS

SIDECAR = "siammask_export.json"
FORMAT = "siammask-export"
FORMAT_VERSION = 2  # 2: the search graph gives only the maps its mask graph reads (2026-12-07)
ROLES = ("template", "search", "mask")
# nano's search graph for a batch of one crop (export/graphs.py), beside the batched one in ONNX exports
ONE_CROP = "search_one"


@dataclass
class ExportInfo:
    """Contents of the sidecar. `files` maps a role (template, search, mask) to a file name for the
    back end (`backend`: onnx or tensorrt); `onnx` lists the ONNX graphs a TensorRT build came from."""

    backend: str
    variant: str
    hp: str
    precision: str
    opset: int
    input_sizes: dict[str, list[int]]
    files: dict[str, str]
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> digest
    verification: dict[str, Any] = field(default_factory=dict)
    siammask_version: str = ""
    onnx: dict[str, str] = field(default_factory=dict)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def siammask_version() -> str:
    from importlib import metadata  # written by an export only: reading graphs (`track`) skips its ~20 ms import

    try:
        return metadata.version("siammask")
    except metadata.PackageNotFoundError:
        return "unknown"


def write_sidecar(folder: Path, info: ExportInfo) -> Path:
    """Fill in checksums of every listed file and the package version, then write the JSON."""
    names = [*info.files.values(), *info.onnx.values()]
    info.sha256 = {name: sha256(folder / name) for name in dict.fromkeys(names)}
    info.siammask_version = siammask_version()
    path = folder / SIDECAR
    path.write_text(json.dumps(asdict(info), indent=2) + "\n")
    return path


def read_sidecar(folder: str | Path, backend: str | None = None, check_files: bool = True) -> ExportInfo:
    """Read and check an export directory: sidecar present and readable, of the expected back end,
    every file there with the recorded checksum. Each problem is a one-line UserError."""
    folder = Path(folder)
    path = folder / SIDECAR
    if not path.is_file():
        raise UserError(f"'{folder}' has no {SIDECAR}; make an export directory with "
                        "'siammask export --weights FILE --out DIR'")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"no \"format\": \"{FORMAT}\" entry")
        if data.get("format_version") != FORMAT_VERSION:
            raise UserError(f"'{path}' has export format version {data.get('format_version')}, this siammask "
                            f"reads version {FORMAT_VERSION}; re-export with this siammask")
        info = ExportInfo(**data)
    except (ValueError, TypeError) as exc:
        raise UserError(f"'{path}' is not a valid siammask export sidecar ({exc}); re-export") from None
    if backend is not None and info.backend != backend:
        raise UserError(f"'{folder}' holds a {info.backend} export, not {backend}; export it with "
                        f"'siammask export --format {backend}' or pick the matching --engine")
    if info.variant not in VARIANTS:
        raise UserError(f"'{path}' is an export of variant '{info.variant}', which this siammask does not know")
    if not set(ROLES) <= set(info.files) <= {*ROLES, ONE_CROP}:
        raise UserError(f"'{path}' lists roles {sorted(info.files)}, expected {list(ROLES)} (and optionally "
                        f"{ONE_CROP}); re-export")
    if check_files:
        for name in dict.fromkeys([*info.files.values(), *info.onnx.values()]):
            file = folder / name
            if not file.is_file():
                raise UserError(f"export directory '{folder}' is missing {name}; re-export it")
            if sha256(file) != info.sha256.get(name):
                raise UserError(f"'{file}' does not match the checksum in {SIDECAR} (corrupt, truncated or "
                                "replaced); re-export")
    return info
