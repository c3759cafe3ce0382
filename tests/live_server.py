"""``python -m memegen serve`` in a subprocess on a free loopback port, for the tests that
need the real WSGI server (the browser's, and how the server stops)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import memegen

START_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def live_server(root: Path, **env: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """The server and its base URL once ``/healthz`` answers; memes are kept in
    ``root/memes`` and its log in ``root/server.log``. Stopped (SIGTERM) on leaving."""
    port = free_port()
    src = str(Path(memegen.__file__).parent.parent)  # works installed or from a checkout
    environment = {
        **os.environ,
        "MEMEGEN_STORAGE_DIR": str(root / "memes"),
        "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
        **env,
    }
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "memegen", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited ({process.returncode}):\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no /healthz after {START_TIMEOUT_S} s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield process, base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
