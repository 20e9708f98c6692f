"""ONNX Runtime's optimised graphs kept per machine (engines/graph_cache.py): real sessions on a
real nano export, a cache folder of the test's own."""
from __future__ import annotations

import hashlib
import logging
import os

import numpy as np
import pytest

from siammask.engines import graph_cache
from siammask.engines.graph_cache import FOLDER, GraphCache
from siammask.engines.onnxruntime_engine import OnnxRuntimeEngine
from siammask.engines.sidecar import sha256
from siammask.export.onnx_export import random_feeds

from exports import exported, random_model


@pytest.fixture
def nano(tmp_path_factory):
    return exported("nano", tmp_path_factory.getbasetemp())


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIAMMASK_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / FOLDER


def _outputs(engine) -> list[np.ndarray]:
    """Every graph of the export on seeded inputs: one crop (the one-crop graph), two (the batched one)."""
    feeds = random_feeds(random_model("nano"), batch=2, seed=3)
    features = engine.template(feeds["template"]["z"].numpy())
    out = []
    for crops in (slice(1, 2), slice(0, 2)):
        heads = engine.track(feeds["search"]["x"][crops].numpy(), features[crops])
        out += [heads.cls, heads.loc, *heads.context.values(),
                engine.mask(heads, feeds["mask"]["pos_yx"][crops].numpy())]
    return out


def _entries(cache) -> dict[str, tuple[int, float]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime) for p in cache.iterdir()}


def test_a_graph_optimised_once_is_opened_from_the_cache_with_the_same_outputs(nano, cache, tmp_path, monkeypatch):
    first = OnnxRuntimeEngine(nano)
    made = _entries(cache)
    assert len(made) == 3  # template, mask, one-crop search: opened at load; the batched one waits
    want = _outputs(first)
    kept = _entries(cache)
    assert len(kept) == 4 and set(made) < set(kept)  # the batched search graph, opened by the first batch
    for entry in cache.iterdir():
        os.utime(entry, (1, 1))  # long unused
    got = _outputs(OnnxRuntimeEngine(nano))
    after = _entries(cache)
    assert {name: inode for name, (inode, _) in after.items()} == {name: inode for name, (inode, _) in kept.items()}
    assert all(mtime > 1 for _, mtime in after.values()), "each entry opened is marked as used"
    assert all(np.array_equal(a, b) for a, b in zip(want, got))
    # the same graphs with no cache at all (the cache folder cannot be made: a file is in the way)
    (tmp_path / "blocked").write_text("a file")
    monkeypatch.setenv("SIAMMASK_CACHE_DIR", str(tmp_path / "blocked"))
    assert all(np.array_equal(a, b) for a, b in zip(want, _outputs(OnnxRuntimeEngine(nano))))


def test_a_damaged_or_unreadable_entry_is_made_again(nano, cache, caplog):
    want = _outputs(OnnxRuntimeEngine(nano))
    entries = sorted(cache.iterdir())
    damaged, foreign = entries[0], entries[1]
    damaged.write_bytes(damaged.read_bytes()[:-100])  # truncated: no longer the checksum in its name
    garbage = b"\x08\x07not a graph"
    renamed = foreign.with_name(f"{foreign.name.rpartition('-')[0]}-{hashlib.sha256(garbage).hexdigest()[:16]}.onnx")
    foreign.unlink()
    renamed.write_bytes(garbage)  # its checksum holds, ONNX Runtime cannot read it
    with caplog.at_level(logging.WARNING, logger="siammask.engines"):
        got = _outputs(OnnxRuntimeEngine(nano))
    assert all(np.array_equal(a, b) for a, b in zip(want, got))
    assert f"the optimised graph {damaged} is damaged" in caplog.text
    assert f"the optimised graph {renamed} did not open" in caplog.text
    assert not renamed.exists()
    entries = list(cache.iterdir())  # made again (the truncated one may get its old name back)
    assert len(entries) == 4
    assert all(sha256(e)[:16] == e.stem.rpartition("-")[2] for e in entries)


def test_only_the_most_recently_used_entries_are_kept(nano, cache, monkeypatch):
    monkeypatch.setattr(graph_cache, "KEEP", 2)
    cache.mkdir(parents=True, mode=0o700)
    stale = cache / ".left-by-a-killed-process.partial"
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))
    OnnxRuntimeEngine(nano)  # three graphs at load: two kept
    kept = list(cache.iterdir())
    assert len(kept) == 2 and stale not in kept


def test_a_cache_that_cannot_be_written_or_trusted_is_not_used(nano, cache, monkeypatch):
    """A write that fails (a full disk, here a folder gone) leaves the session as it would be without
    a cache; entries in a folder others may write to, or behind a link, are neither read nor added to."""
    want = _outputs(OnnxRuntimeEngine(nano))
    for entry in cache.iterdir():
        os.utime(entry, (1, 1))
    before = _entries(cache)
    cache.chmod(0o777)  # anyone may write here: what is in it may not be this user's
    assert all(np.array_equal(a, b) for a, b in zip(want, _outputs(OnnxRuntimeEngine(nano))))
    assert _entries(cache) == before  # not read (not marked as used), nothing written
    cache.chmod(0o700)
    linked = cache.with_name("elsewhere")
    cache.rename(linked)
    cache.symlink_to(linked, target_is_directory=True)
    assert all(np.array_equal(a, b) for a, b in zip(want, _outputs(OnnxRuntimeEngine(nano))))
    assert _entries(linked) == before
    cache.unlink()
    cache.mkdir(mode=0o700)
    monkeypatch.setattr(GraphCache, "partial", lambda self: self.folder / "gone" / "graph.partial")
    assert all(np.array_equal(a, b) for a, b in zip(want, _outputs(OnnxRuntimeEngine(nano))))
    assert list(cache.iterdir()) == []


def test_an_entry_is_for_one_runtime_version_and_one_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("SIAMMASK_CACHE_DIR", str(tmp_path))
    here = GraphCache("ab" * 32, "1.32.0").key
    assert GraphCache("ab" * 32, "1.32.0").key == here
    assert GraphCache("ab" * 32, "1.33.0").key != here
    assert GraphCache("cd" * 32, "1.32.0").key != here
    monkeypatch.setattr(graph_cache, "machine_identity", lambda: "aarch64\nFeatures : fp asimd")
    assert GraphCache("ab" * 32, "1.32.0").key != here
    assert graph_cache.graph_cache(None, "1.32.0") is None  # a graph of unknown checksum is not kept
