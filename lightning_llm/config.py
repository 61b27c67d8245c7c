"""Typed configs from plain mappings (what Hydra and library users pass), with errors that name the key."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, TypeVar

from lightning_llm.errors import UserError

T = TypeVar("T")


def from_dict(cls: type[T], values: Any, where: str) -> T:
    """Build dataclass `cls` from a mapping, naming the config key `where` in any error."""
    if isinstance(values, cls):
        return values
    values = dict(values or {})
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise UserError(f"unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = known[name].default_factory() if callable(known[name].default_factory) else None
        kwargs[name] = from_dict(type(default), value, f"{where}.{name}") if is_dataclass(default) else value
    return cls(**kwargs)
