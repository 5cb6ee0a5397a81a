"""Named pipelines: ordered steps with explicit parameters, recorded in every shard they produce."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import UserError
from .basic import square_resize


@dataclass(frozen=True)
class Pipeline:
    """A named preset: the ordered step names with their parameters, and the function applying them."""

    name: str
    steps: tuple[str, ...]
    params: dict = field(default_factory=dict)
    fn: Callable[[np.ndarray, int], np.ndarray] = square_resize

    def __call__(self, image: np.ndarray, size: int) -> np.ndarray:
        return self.fn(image, size)

    def record(self) -> dict:
        """What goes into shard attrs and cell records."""
        return {"name": self.name, "steps": list(self.steps), "params": self.params}


BASIC = Pipeline("basic", ("decode_rgb", "centre_crop_short_side", "resize_area", "to_uint8"),
                 {"crop": "centre square on the short side", "interpolation": "area (cubic when enlarging)"})
PIPELINES: dict[str, Pipeline] = {"basic": BASIC}


def get_pipeline(name: str) -> Pipeline:
    """The pipeline preset called ``name``."""
    if name not in PIPELINES:
        raise UserError(f"--pipeline {name!r} unknown; available: {', '.join(sorted(PIPELINES))}")
    return PIPELINES[name]
