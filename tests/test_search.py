"""Several processes given one database URL and study name search together."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("torch")

from tiny_datasets import write_class_folders  # noqa: E402


def test_two_processes_join_one_study(tmp_path: Path):
    faces = write_class_folders(tmp_path / "faces", {"train": 20})
    storage = f"sqlite:///{tmp_path / 'search.db'}"
    command = [
        sys.executable, "-m", "memegen", "train", "search", "--data", str(faces),
        "--storage", storage, "--study", "shared", "--trials", "1", "--epochs", "1",
        "--batch-size", "16", "--threads", "1", "--precision", "bf16",
        "--families", "vgg", "--widths", "4",
        "--max-depth", "1", "--heads", "grid", "--runs", str(tmp_path / "runs"),
    ]
    workers = [
        subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr.decode()[-2000:]
    study = optuna.load_study(study_name="shared", storage=storage)
    finished = [trial for trial in study.trials if trial.state.is_finished()]
    assert len(finished) == 2
    assert len({trial.user_attrs["worker"] for trial in finished}) == 2
    for trial in finished:
        config = json.loads((Path(trial.user_attrs["run_dir"]) / "config.json").read_text())
        # The command line's fixed settings and bounds reach the trials.
        assert config["precision"] == "bf16" and config["head"] == "grid"
