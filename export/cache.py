"""Verified ONNX exports of loaded models, kept on disk between runs.

Running a graph back end on a .pth checkpoint needs an export first (~5-10 s on 2 cores with its
verification). Doing that on every start would make the fast engine the slow one for short jobs,
so an export is kept under a key of everything that decides its bytes (the weights, the variant,
the precision, the opset, the versions of torch, onnx and onnxruntime, and the source of the code
that writes the graphs: the networks and this export package) and reused.

Where: $SIAMMASK_CACHE_DIR, else $XDG_CACHE_HOME/siammask, else ~/.cache/siammask. Exports are
written into a private temporary folder and renamed into place, so processes starting together
(the pipeline's workers) never see half a folder; the loser of that race uses the winner's. A
cache that cannot be written is not an error: the export goes to a temporary folder instead."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from siammask.cache_dir import cache_root
from siammask.engines.sidecar import SIDECAR, read_sidecar
from siammask.errors import UserError
from siammask.model import TrackingNet

log = logging.getLogger(__name__)


def _graph_sources() -> list[Path]:
    """The source files whose change changes an exported graph: the networks, the variants' data
    (the refine's geometry), the graphs' names and sidecar, and the export code (so a cache made by
    an older siammask is not reused after an upgrade)."""
    import siammask.engines.graph_io
    import siammask.engines.sidecar
    import siammask.model
    import siammask.variants

    files = [siammask.variants.__file__, siammask.engines.graph_io.__file__, siammask.engines.sidecar.__file__]
    return sorted([*Path(siammask.model.__file__).parent.glob("*.py"), *Path(__file__).parent.glob("*.py"),
                   *map(Path, files)])


def export_key(model: TrackingNet, precision: str, opset: int) -> str:
    """A digest of the weights (names, shapes, values) and of what else decides the exported graphs."""
    import onnx
    import onnxruntime

    digest = hashlib.sha256()
    for source in _graph_sources():
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    for part in (model.variant, precision, str(opset), torch.__version__, onnx.__version__, onnxruntime.__version__):
        digest.update(part.encode() + b"\0")
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:32]


def _complete(folder: Path) -> bool:
    """Whether `folder` holds a whole export: its sidecar, and every file it lists with its checksum."""
    if not (folder / SIDECAR).is_file():
        return False
    try:
        read_sidecar(folder)
    except UserError as problem:
        log.warning("the cached export %s is damaged (%s); exporting it again", folder, problem)
        return False
    return True


def cached_export(model: TrackingNet, precision: str, opset: int,
                  export: Callable[[Path], object]) -> Path | None:
    """The folder of a finished export of `model`: found in the cache, or made by `export(folder)`
    and stored there. None when the cache cannot be written (the caller exports elsewhere)."""
    try:
        root = cache_root() / "exports"
    except OSError as error:  # NoCache: no folder to keep it in
        log.warning("no export cache (%s); exporting to a temporary folder", error)
        return None
    final = root / export_key(model, precision, opset)
    if _complete(final):
        log.debug("using the cached export %s", final)
        return final
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".partial-", dir=root))
    except OSError as error:
        log.warning("export cache %s is not writable (%s); exporting to a temporary folder", root, error)
        return None
    try:
        log.info("exporting the %s model for ONNX Runtime once (kept in %s)", model.variant, root)
        export(work)
        if final.exists() and not _complete(final):
            shutil.rmtree(final)  # a folder left by hand or a damaged export: ours replaces it
        os.replace(work, final)
    except OSError:
        if not _complete(final):  # not the other process having won the race
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
