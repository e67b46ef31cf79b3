"""The ``tim_information`` config section."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TimInfoConfig:
    enabled: bool = False


def parse_config(section: Any) -> TimInfoConfig:
    cfg = TimInfoConfig(enabled=section.bool("enabled", False))
    section.finish()
    return cfg
