"""Image folders: one suffix set and one listing function for every layout."""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError
from ...io.sources import IMAGE_SUFFIXES


def real_dir(path: Path) -> Path:
    """Follow a folder symlink that git checked out as a small text file holding its relative
    target (core.symlinks=false), as in the shared DAVIS-train copy; other paths are returned as is."""
    if path.is_file() and path.stat().st_size < 256:
        try:
            target = path.parent / path.read_text().strip()
            if target.is_dir():
                return target
        except (OSError, UnicodeDecodeError, ValueError):
            pass
    return path


def list_images(folder: Path) -> tuple[Path, ...]:
    """The images of a frame folder in name order (benchmarks zero-pad their frame numbers)."""
    folder = real_dir(folder)
    if not folder.is_dir():
        raise UserError(f"frame folder '{folder}' not found")
    frames = tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
    if not frames:
        raise UserError(f"frame folder '{folder}' has no images")
    return frames


def find_image(folder: Path, stem: str) -> Path | None:
    """folder/stem.<any image suffix, either case>, or None."""
    for suffix in sorted(IMAGE_SUFFIXES):
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def subfolders(folder: Path) -> list[str]:
    """Names of the entries that are folders, or git's text stand-ins for folder symlinks; none
    when `folder` is not a folder."""
    folder = real_dir(folder)
    return sorted(p.name for p in folder.iterdir() if real_dir(p).is_dir()) if folder.is_dir() else []
