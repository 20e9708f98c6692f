"""Imports point one way: commands -> pipeline -> api -> export -> engines -> core.

Read from the source (every import statement, function-level ones too), so a new back-edge fails
here before it becomes an import cycle. `api` is load_tracker: above export because a graph back
end on a .pth checkpoint is exported on the fly."""
from __future__ import annotations

from pathlib import Path

from package_layout import imports, module_files

from siammask.cli import COMMANDS

LAYERS = ("commands", "pipeline", "api", "export", "engines", "core")  # top to bottom
NAMED = {"cli": "commands", "commands": "commands", "pipeline": "pipeline", "api": "api", "export": "export",
         "engines": "engines"}


def layer_of(module: str) -> str | None:
    """The layer of a siammask module; None outside the package. The package itself re-exports
    load_tracker (lazily), so it sits with api."""
    parts = module.split(".")
    if parts[0] != "siammask":
        return None
    return "api" if len(parts) == 1 else NAMED.get(parts[1], "core")


def back_edges(files: dict[str, Path]) -> list[str]:
    """Every import from a module to a module of a higher layer, as 'file:line: a -> b'."""
    known = set(files)
    found = []
    for module, path in sorted(files.items()):
        here = LAYERS.index(layer_of(module))
        for line, target in imports(path, module, known):
            there = layer_of(target)
            if there is not None and LAYERS.index(there) < here:
                found.append(f"{path.name}:{line}: {module} ({layer_of(module)}) -> {target} ({there})")
    return found


def test_imports_point_down_the_layers():
    files = module_files()
    assert {layer_of(m) for m in files} == set(LAYERS)  # every layer is there: the map is not stale
    assert back_edges(files) == []


def imports_of_commands(files: dict[str, Path]) -> list[str]:
    """Every import of a subcommand's module (cli loads them by name), as 'file:line: a -> b'."""
    known, commands = set(files), set(COMMANDS.values())
    return [f"{path.name}:{line}: {module} -> {target}" for module, path in sorted(files.items())
            for line, target in imports(path, module, known) if target in commands]


def test_no_module_imports_a_command():
    """A subcommand is an entry point: what two of them share (the box rule, tracking into outputs)
    lives in siammask.validate, commands.common or commands.outputs, not in one of them."""
    files = module_files()
    assert set(COMMANDS.values()) <= set(files)  # the names are real modules: the check is not vacuous
    assert imports_of_commands(files) == []


def test_an_import_of_a_command_is_reported(tmp_path):
    demo = tmp_path / "demo.py"
    demo.write_text("from .track import run\n")
    files = {**module_files(), "siammask.commands.demo": demo}
    assert imports_of_commands(files) == ["demo.py:1: siammask.commands.demo -> siammask.commands.track"]


def test_a_back_edge_is_reported(tmp_path):
    """The check itself: an engine importing the pipeline at function level, and core importing an
    engine through a relative import, are both caught."""
    engine = tmp_path / "engine.py"
    engine.write_text("def f():\n    from siammask.pipeline import messages\n")
    core = tmp_path / "core.py"
    core.write_text("from .engines import registry\n")
    files = {**module_files(), "siammask.engines.extra": engine, "siammask.extra": core}
    assert back_edges(files) == [
        "engine.py:2: siammask.engines.extra (engines) -> siammask.pipeline.messages (pipeline)",
        "core.py:1: siammask.extra (core) -> siammask.engines.registry (engines)",
    ]
