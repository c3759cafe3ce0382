"""Shared fixtures: one real Pipeline per test run, a fresh app and client per test.

The pipeline loads the ONNX models, so it is built once (session scope) and shared;
everything with state (settings, meme store, rate limiter) is built anew for each test,
so no test sees another's memes or request counts. Imports of the app happen inside the
fixtures, so tests that need no app still run if the web layer cannot be imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from flask import Flask
    from flask.testing import FlaskClient

    from memegen.pipeline import Pipeline


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    """The real pipeline with default settings (not the environment's), built once."""
    from memegen.config import Settings
    from memegen.pipeline import Pipeline

    return Pipeline(Settings())


@pytest.fixture
def storage_dir(tmp_path: Path) -> Path:
    """Where the test's app stores memes; tests look inside it for leftovers."""
    return tmp_path / "memes"


@pytest.fixture
def make_app(pipeline: Pipeline, storage_dir: Path) -> Iterator[Callable[..., Flask]]:
    """Build an app with settings overridden by keyword; its cleanup thread stops at teardown."""
    from memegen.config import Settings
    from memegen.web import create_app
    from memegen.web.state import EXTENSION_KEY

    apps: list[Flask] = []

    def build(**overrides: object) -> Flask:
        settings = Settings(**{"storage_dir": storage_dir, **overrides})
        app = create_app(settings, pipeline)
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions[EXTENSION_KEY].store.stop_cleanup()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """An app with default settings and its own storage directory."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
