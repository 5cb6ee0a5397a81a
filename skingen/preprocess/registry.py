"""Named pipelines: ordered steps with explicit parameters, recorded in every shard they produce.

A pipeline is ``steps`` (artifact removal and colour normalisation, at native resolution) followed
by the square policy (centre crop to the short side, area resize). Presets are built in
(``basic``, ``advanced``) or read from TOML::

    name = "my_preset"
    [[steps]]
    step = "dullrazor"
    kernel_size = 17
    inpaint_radius = 1
"""
from __future__ import annotations

import inspect
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BadImage, UserError
from . import steps as S
from .basic import square_resize

STEPS: dict[str, Callable[..., np.ndarray]] = {
    "dark_corners": S.dark_corners,
    "dullrazor": S.dullrazor,
    "ruler_removal": S.ruler_removal,
    "specular_removal": S.specular_removal,
    "shades_of_gray": S.shades_of_gray,
}
NORMALISING_STEPS = frozenset({"shades_of_gray"})  # change every pixel by design; excluded from eval


def step_defaults(name: str) -> dict:
    """The default parameters of step ``name``."""
    sig = inspect.signature(STEPS[name])
    return {k: p.default for k, p in list(sig.parameters.items())[1:]}


def resolve_step(name: str, params: dict, where: str) -> tuple[str, dict]:
    """Validate a step and fill in its defaults; unknown names are one-line errors naming them."""
    if name not in STEPS:
        raise UserError(f"{where}: unknown step {name!r}; available: {', '.join(sorted(STEPS))}")
    defaults = step_defaults(name)
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise UserError(f"{where}: step {name!r} has no parameter(s) {', '.join(unknown)}; "
                        f"its parameters are {', '.join(defaults)}")
    return name, {**defaults, **params}


@dataclass(frozen=True)
class Pipeline:
    """A named preset: ordered (step, params) at native resolution, then square crop + resize."""

    name: str
    steps: tuple[tuple[str, dict], ...] = ()
    resize: dict = field(default_factory=lambda: {"crop": "centre square on the short side",
                                                  "interpolation": "area (cubic when enlarging)"})

    def clean(self, image: np.ndarray, normalise: bool = True) -> np.ndarray:
        """Apply the steps at native resolution; a failing step raises BadImage naming it."""
        for name, params in self.steps:
            if not normalise and name in NORMALISING_STEPS:
                continue
            try:
                image = STEPS[name](image, **params)
            except Exception as exc:  # noqa: BLE001 - any step failure quarantines the image
                raise BadImage(f"preprocessing step {name} failed: {type(exc).__name__}: {exc}") from None
        return image

    def __call__(self, image: np.ndarray, size: int) -> np.ndarray:
        return square_resize(self.clean(image), size)

    def record(self) -> dict:
        """Name, ordered steps and every parameter: what goes into shard attrs and cell records."""
        return {"name": self.name, "steps": [{"step": n, **p} for n, p in self.steps], "resize": self.resize}


BASIC = Pipeline("basic")
ADVANCED = Pipeline("advanced", tuple(resolve_step(n, {}, "advanced preset") for n in
                                      ("dark_corners", "dullrazor", "ruler_removal", "shades_of_gray")))
PRESETS: dict[str, Pipeline] = {"basic": BASIC, "advanced": ADVANCED}


def load_preset(path: Path) -> Pipeline:
    """Read a TOML preset file (``name`` + ``[[steps]]`` tables with ``step`` and parameters)."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: cannot read preset ({exc}); fix the TOML") from None
    unknown = sorted(set(data) - {"name", "steps"})
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(unknown)}; a preset has name and [[steps]]")
    steps = []
    for i, entry in enumerate(data.get("steps", [])):
        params = dict(entry)
        if "step" not in params:
            raise UserError(f"{path}: steps[{i}] has no 'step' key; add step = \"dullrazor\" (or another step)")
        steps.append(resolve_step(params.pop("step"), params, f"{path} steps[{i}]"))
    return Pipeline(str(data.get("name", path.stem)), tuple(steps))


def get_pipeline(name: str | os.PathLike) -> Pipeline:
    """A built-in preset by name, or a preset read from a ``.toml`` file."""
    text = str(name)
    if text in PRESETS:
        return PRESETS[text]
    if text.endswith(".toml"):
        path = Path(text)
        if not path.is_file():
            raise UserError(f"{path}: no such preset file")
        return load_preset(path)
    raise UserError(f"--pipeline {text!r} unknown; use {', '.join(PRESETS)} or a preset .toml file")
