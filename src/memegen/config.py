"""Settings: embedded defaults, overridden by ``MEMEGEN_*`` environment variables."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MANIFEST = ASSETS / "models" / "manifest.json"


def _default_storage_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"memegen-{os.getuid()}"


@dataclass(frozen=True)
class Settings:
    """Every knob of the app; ``MEMEGEN_<FIELD NAME IN UPPER CASE>`` sets each one."""

    max_upload_bytes: int = 15 * 1024 * 1024
    max_pixels: int = 40_000_000
    decode_max_side: int = 2048
    output_max_side: int = 1600
    min_side: int = 16
    meme_ttl_seconds: int = 3600
    storage_dir: Path = field(default_factory=_default_storage_dir)
    manifest: Path = DEFAULT_MANIFEST
    captions_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 4
    rate_limit_per_minute: int = 120
    watermark: str = ""  # text set small in a corner of every meme; empty for none
    # An animated upload saved as GIF or WebP becomes an animated meme of at most this
    # many frames, this many pixels on the long side (every frame is drawn on and stored).
    animation_max_frames: int = 60
    animation_max_side: int = 480

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides) -> Settings:
        values: dict = {}
        for spec in fields(cls):
            raw = environ.get(f"MEMEGEN_{spec.name.upper()}")
            if raw is None or raw == "":
                continue
            values[spec.name] = _parse(spec.name, raw, spec.type)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


def _parse(name: str, raw: str, annotation: str):
    try:
        if annotation == "int":
            return int(raw)
        if annotation in ("Path", "Path | None"):
            return Path(raw)
        return raw
    except ValueError as error:
        raise ValueError(f"MEMEGEN_{name.upper()}={raw!r} is not a valid {annotation}") from error
