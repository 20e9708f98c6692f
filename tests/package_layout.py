"""Where the installed package's modules live in the repository, as setup.cfg maps them (the
engines/, export/, pipeline/ and configs/ folders install inside the siammask namespace)."""
from __future__ import annotations

import ast
import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _options() -> configparser.SectionProxy:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg["options"]


def package_dirs() -> dict[str, Path]:
    """Installed package name -> its folder in the repository."""
    options = _options()
    mapping = dict(line.split("=", 1) for line in options["package_dir"].split("\n") if line.strip())
    mapping = {k.strip(): ROOT / v.strip() for k, v in mapping.items()}
    found = {}
    for name in options["packages"].split():
        head = max((m for m in mapping if name == m or name.startswith(m + ".")), key=len, default=None)
        rest = name[len(head) + 1:] if head else name
        base = mapping[head] if head else ROOT
        found[name] = base.joinpath(*rest.split(".")) if rest else base
    return found


def module_files() -> dict[str, Path]:
    """Every installed module's dotted name -> its source file (a package's is its __init__.py)."""
    modules = {}
    for package, folder in package_dirs().items():
        for path in folder.glob("*.py"):
            modules[package if path.name == "__init__.py" else f"{package}.{path.stem}"] = path
    return modules


def imports(path: Path, module: str | None = None, known: set[str] | frozenset[str] = frozenset()) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a file, function-level ones included.
    `module`: the file's own dotted name, to resolve relative imports; `from pkg import name` is
    `pkg.name` when that is one of the `known` modules."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if module is None or path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package is None:
                continue  # relative: inside a package this file is not read as part of
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found += [(node.lineno, f"{base}.{a.name}" if f"{base}.{a.name}" in known else base) for a in node.names]
    return list(dict.fromkeys(found))  # `from m import a, b` is one import of m
