"""Small helpers for tests that make input files."""

from __future__ import annotations

from pathlib import Path


def touch(root: Path, *names: str) -> None:
    """Create each file under `root` (and its folders), holding its own name."""
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
