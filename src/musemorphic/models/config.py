"""What every model config shares: a JSON round trip and named presets."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, TypeVar

T = TypeVar("T", bound="JsonConfig")


class JsonConfig:
    """Mixin for dataclass configs saved inside checkpoints as JSON."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any]) -> T:
        return cls(**d)

    @classmethod
    def from_preset(cls: type[T], presets: dict[str, dict], preset: str, **overrides) -> T:
        if preset not in presets:
            raise ValueError(f"unknown {cls.__name__.removesuffix('Config')} preset {preset!r}; choose from {sorted(presets)}")
        return cls(**{**presets[preset], **overrides})
