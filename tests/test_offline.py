"""MemeGen runs offline and leaves nothing behind on the machine it runs on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PHOTO = Path(__file__).parent / "data" / "astronaut.jpg"


def test_reading_a_photo_leaves_no_file_in_the_temp_folder_or_the_home_folder(tmp_path: Path):
    # ONNX Runtime's telemetry, on unless switched off, writes into both when imported.
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "ORT_DISABLE_TELEMETRY"}
    env |= {"HOME": str(home), "TMPDIR": str(temp), "XDG_CACHE_HOME": str(home / ".cache")}
    finished = subprocess.run(
        [sys.executable, "-m", "memegen", "analyze", str(PHOTO)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    assert '"expression"' in finished.stdout
    left = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*")
                  if path not in (home, temp))
    assert left == []
