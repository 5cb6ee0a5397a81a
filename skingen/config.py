"""Typed dataclass configs from TOML tables: unknown keys and wrong types are one-line errors."""
from __future__ import annotations

import dataclasses
import tomllib
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import UserError

T = TypeVar("T")


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is not type(None):
                try:
                    return _check_type(value, arg, where)
                except UserError:
                    continue
    check = origin or hint
    if isinstance(check, type) and not isinstance(value, check):
        raise UserError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict, where: str) -> T:
    """Build dataclass ``cls`` from ``data``; ``where`` names the file/table for error messages."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {k: _check_type(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except UserError as exc:  # the class's own checks (__post_init__): say where
        raise UserError(f"{where}: {exc}") from None


def load_toml(path: str | Path) -> dict:
    """Parse a TOML file, or a one-line error naming it."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML ({exc})") from None


def to_dict(obj: Any) -> dict:
    """A dataclass as a plain dict (for cell records and JSON)."""
    return dataclasses.asdict(obj)
