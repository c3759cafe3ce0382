"""Settings: embedded defaults, overridden by ``MEMEGEN_*`` environment variables."""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from memegen.errors import UserError

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MANIFEST = ASSETS / "models" / "manifest.json"


#: The smallest (and for some the largest) value each number setting may take: past them the
#: app would fail later and further from the cause (a server with no threads never answers, a
#: side of 0 divides by zero, waitress quietly wraps a port above 65535, an expiry past the
#: year 9999 cannot be written as a date, and each thread is started up front).
TEN_YEARS = 10 * 365 * 24 * 3600
BOUNDS: dict[str, tuple[int, int | None]] = {
    "max_upload_bytes": (1, None),
    "max_pixels": (1, None),
    "decode_max_side": (1, None),
    "output_max_side": (1, None),
    "min_side": (1, None),
    "meme_ttl_seconds": (0, TEN_YEARS),  # 0: a meme expires at once, as tests of expiry use
    "port": (0, 65535),  # 0: any free port, which the tests' servers use
    "threads": (1, 256),
    "rate_limit_per_minute": (0, None),  # 0: no limit
    "animation_max_frames": (0, None),  # 0: animated uploads become still memes
    "animation_max_side": (1, None),
}


class SettingError(UserError):
    """A setting that cannot be parsed or is out of range; the message names it as the
    user set it (``MEMEGEN_PORT`` from the environment, ``port`` otherwise)."""


def _default_storage_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"memegen-{os.getuid()}"


@dataclass(frozen=True)
class Settings:
    """Every knob of the app; ``MEMEGEN_<FIELD NAME IN UPPER CASE>`` sets each one."""

    max_upload_bytes: int = 25 * 1024 * 1024
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

    def __post_init__(self) -> None:
        for spec in fields(self):
            _check_value(spec.name, getattr(self, spec.name), spec.name)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **overrides) -> Settings:
        """Settings from ``MEMEGEN_*`` variables, then ``overrides`` (command-line flags; None
        keeps the variable's value); a bad value raises :class:`SettingError`."""
        values: dict = {}
        for spec in fields(cls):
            variable = f"MEMEGEN_{spec.name.upper()}"
            raw = environ.get(variable)
            if raw is None or raw == "" or overrides.get(spec.name) is not None:
                continue  # unset, or overridden by a flag: not this variable's to refuse
            values[spec.name] = _parse(variable, raw, spec.type)
            # Checked here too, so that the message names the variable the user set.
            _check_value(spec.name, values[spec.name], variable)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


class NotAWholeNumber(argparse.ArgumentTypeError, ValueError):
    """A ValueError for settings; for flags, argparse shows its message as it is (its
    own would be "invalid whole_number value")."""


def whole_number(raw: str) -> int:
    """``raw`` as an int, written in plain decimal digits (a leading minus allowed): int()
    would also take ``1_000``, ``+7`` and other scripts' digits, which no user means as a
    number here. Also an argparse ``type``, so flags read numbers as settings do."""
    if not re.fullmatch(r"-?[0-9]+", raw.strip()):
        raise NotAWholeNumber(f"{raw!r} is not a whole number in plain digits")
    return int(raw)


def _parse(variable: str, raw: str, annotation: str):
    if annotation == "int":
        try:
            return whole_number(raw)
        except ValueError:
            raise SettingError(f"{variable}={raw!r} is not a valid int") from None
    if annotation in ("Path", "Path | None"):
        return Path(raw)
    return raw


def _check_value(name: str, value: object, label: str) -> None:
    """Raise :class:`SettingError` naming ``label`` when setting ``name`` cannot be used."""
    if name in BOUNDS:
        low, high = BOUNDS[name]
        if value < low or (high is not None and value > high):
            allowed = f"at least {low}" if high is None else f"from {low} to {high}"
            raise SettingError(f"{label} must be {allowed}, not {value}")
    elif name == "host" and not value.strip():
        # waitress would read an empty host as every interface: a choice to make openly.
        raise SettingError(f"{label} must not be empty (0.0.0.0 listens on every interface)")
    elif name == "watermark":
        # Imported here so that the CLI can read its flags without loading the fonts' code.
        from memegen.typeset import UndrawableText, check_drawable

        try:
            check_drawable(value)
        except UndrawableText as error:
            named = "" if label == name else f"{label}: "
            raise SettingError(f"{named}the watermark {error}") from error
