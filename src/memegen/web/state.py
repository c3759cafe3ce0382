"""What the request handlers share: settings, the one pipeline, the store, the limiter, the
conversions kept for download and the slots for costly work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app

from memegen.config import Settings
from memegen.storage import MemeStore
from memegen.web.conversions import Conversions
from memegen.web.ratelimit import RateLimiter
from memegen.web.workslots import WorkSlots

if TYPE_CHECKING:
    from memegen.pipeline import Pipeline

EXTENSION_KEY = "memegen"


@dataclass(frozen=True)
class WebState:
    """Held in ``app.extensions`` so each app (and each test's app) has its own."""

    settings: Settings
    pipeline: Pipeline
    store: MemeStore
    limiter: RateLimiter
    conversions: Conversions
    work: WorkSlots


def state() -> WebState:
    """The state of the app handling the current request."""
    return current_app.extensions[EXTENSION_KEY]
