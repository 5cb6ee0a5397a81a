"""The diffusers checkout the fixture scripts import the reference from (``DIFFUSERS_PATH``), never a copy."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def diffusers_checkout(example: str) -> Path:
    """The checkout named by DIFFUSERS_PATH, with its src/ first on sys.path (checked: the imported package lives
    there) and ``example`` (a path inside it) present."""
    root = Path(os.environ.get("DIFFUSERS_PATH", ""))
    if not (root / "src" / "diffusers").is_dir() or not (root / example).is_file():
        raise SystemExit(f"set DIFFUSERS_PATH to a diffusers checkout (with src/diffusers and {example})")
    sys.path.insert(0, str(root / "src"))
    import diffusers

    if not Path(diffusers.__file__).resolve().is_relative_to((root / "src").resolve()):
        raise SystemExit(f"diffusers was imported from {diffusers.__file__}, not from {root}/src")
    return root
