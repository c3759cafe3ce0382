"""Several processes given one database URL and study name search together; a study
never adopts a trial folder it did not make; bad bounds are refused before the study."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("torch")

from memegen.cli import main  # noqa: E402
from memegen.errors import UserError  # noqa: E402
from memegen.training import search  # noqa: E402
from memegen.training.datasets import image_digests, load_split  # noqa: E402
from memegen.training.search import SearchSettings, open_study, run_search  # noqa: E402

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


def test_a_study_in_a_new_database_refuses_the_trial_folders_of_the_old_one(tmp_path: Path):
    dataset = load_split(str(write_class_folders(tmp_path / "faces", {"train": 8})), "train")
    settings = SearchSettings(runs_dir=tmp_path / "runs", epochs=1, batch_size=16, threads=1,
                              families=("vgg",), widths=(4,), max_depth=1, holdout=0.25)
    run_search(dataset, "fer", f"sqlite:///{tmp_path / 'old.db'}", 1, None, settings)
    old_trial = tmp_path / "runs" / "fer" / "trial-0000"
    before = {path.name: path.read_bytes() for path in old_trial.iterdir()}

    new_storage = f"sqlite:///{tmp_path / 'new.db'}"
    with pytest.raises(UserError, match=f"{old_trial} was not made by a trial of this study"):
        run_search(dataset, "fer", new_storage, 1, None, settings)
    assert {path.name: path.read_bytes() for path in old_trial.iterdir()} == before
    assert optuna.get_all_study_names(new_storage) == []  # no empty study left to join


def test_a_study_another_process_creates_while_this_one_lists_them_is_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The other process created the study and its first trial folder just after this one
    found no such study: the folder is that study's, not a stranger's."""
    dataset = load_split(str(write_class_folders(tmp_path / "faces", {"train": 8})), "train")
    settings = SearchSettings(runs_dir=tmp_path / "runs", epochs=1, batch_size=16, threads=1,
                              families=("vgg",), widths=(4,), max_depth=1, holdout=0.25)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    run_search(dataset, "fer", storage, 1, None, settings)  # the other process
    listings: list[bool] = []
    real_listing = search._has_study

    def listing_before_the_other_process(storage, name: str) -> bool:
        listings.append(real_listing(storage, name))
        return len(listings) > 1 and listings[-1]

    monkeypatch.setattr(search, "_has_study", listing_before_the_other_process)
    study = open_study("fer", storage, tmp_path / "runs" / "fer")
    assert len(study.trials) == 1
    assert listings == [True, True]


def test_each_trial_records_the_faces_every_trial_held_out(tmp_path: Path):
    dataset = load_split(str(write_class_folders(tmp_path / "faces", {"train": 12})), "train")
    settings = SearchSettings(runs_dir=tmp_path / "runs", epochs=1, batch_size=16, threads=1,
                              families=("vgg",), widths=(4,), max_depth=1, holdout=0.25,
                              subset=0.5)
    study = run_search(dataset, "fer", f"sqlite:///{tmp_path / 's.db'}", 2, None, settings)
    folders = [Path(trial.user_attrs["run_dir"]) for trial in study.trials]
    rows = [np.load(folder / "holdout_indices.npy") for folder in folders]
    assert np.array_equal(rows[0], rows[1]), "one held-out set, so trials can be weighed on it"
    held_out = json.loads((folders[0] / "class_counts.json").read_text())["held_out"]
    assert len(rows[0]) == sum(held_out.values())
    # The rows name faces of the data given, whatever subset the search drew from it.
    assert np.array_equal(np.load(folders[0] / "holdout_digests.npy"),
                          image_digests(dataset.images[rows[0]]))


@pytest.mark.parametrize(("flags", "message"), [
    (["--families", "vgg,cnn"], "unknown family 'cnn'; choose from vgg, separable, resnet"),
    (["--heads", "foo"], "unknown head 'foo'; choose from pool, grid"),
    (["--widths", "8,x"], "'8,x': widths are whole numbers, comma-separated"),
    (["--widths", "8,1"], "'8,1': every width must be at least 2"),
])
def test_search_refuses_unknown_bounds_while_parsing(
    tmp_path: Path, capsys, flags: list[str], message: str
):
    database = tmp_path / "search.db"
    with pytest.raises(SystemExit) as stopped:
        main(["train", "search", "--data", str(tmp_path), "--storage", f"sqlite:///{database}",
              *flags])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert not database.exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--holdout", "0"], "holdout must be above 0 and below 1, not 0.0"),
    (["--holdout", "1"], "holdout must be above 0 and below 1, not 1.0"),
    (["--subset", "0"], "subset must be above 0 and at most 1, not 0.0"),
    (["--subset", "1.5"], "subset must be above 0 and at most 1, not 1.5"),
    (["--epochs", "0"], "epochs must be at least 1, not 0"),
    (["--max-depth", "0"], "depth must be at least 1, not 0"),
])
def test_search_refuses_out_of_range_settings_before_reading_data_or_opening_the_study(
    tmp_path: Path, capsys, flags: list[str], message: str
):
    # The data is not there: a refusal that names the value came before reading it.
    database = tmp_path / "search.db"
    assert main(["train", "search", "--data", str(tmp_path / "missing"),
                 "--storage", f"sqlite:///{database}", *flags]) == 2
    assert capsys.readouterr().err == f"memegen: {message}\n"
    assert not database.exists()


def test_resuming_a_study_with_other_bounds_or_holdout_is_refused_without_a_trial(tmp_path: Path):
    dataset = load_split(str(write_class_folders(tmp_path / "faces", {"train": 8})), "train")
    settings = SearchSettings(runs_dir=tmp_path / "runs", epochs=1, batch_size=16, threads=1,
                              families=("vgg",), widths=(4,), max_depth=1, holdout=0.25)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    run_search(dataset, "fer", storage, 1, None, settings)
    for changed, message in [
        ({"widths": (4, 8)}, "widths [4] (recorded) against [4, 8] (asked)"),
        ({"holdout": 0.5}, "holdout 0.25 (recorded) against 0.5 (asked)"),
    ]:
        other = SearchSettings(**{**settings.__dict__, **changed})
        with pytest.raises(UserError, match=re.escape(message)):
            run_search(dataset, "fer", storage, 1, None, other)
    # Threads may change; the study goes on with the recorded settings.
    run_search(dataset, "fer", storage, 1, None, SearchSettings(**{**settings.__dict__,
                                                                   "threads": 2}))
    trials = optuna.load_study(study_name="fer", storage=storage).trials
    assert [trial.state for trial in trials] == [optuna.trial.TrialState.COMPLETE] * 2


@pytest.mark.parametrize("storage", ["notaurl", "foo://bar", "sqlite:///{folder}"])
def test_a_storage_that_is_no_database_is_one_line(tmp_path: Path, capsys, storage: str):
    faces = write_class_folders(tmp_path / "faces", {"train": 4})
    url = storage.format(folder=tmp_path)
    assert main(["train", "search", "--data", str(faces), "--storage", url,
                 "--epochs", "1", "--widths", "4", "--max-depth", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"memegen: --storage {url!r}: no study database can be opened there")
    assert err.count("\n") == 1


def test_the_search_holds_out_whole_subjects_as_fit_does(tmp_path: Path):
    from tiny_datasets import write_ckplus

    ckplus = write_ckplus(tmp_path / "ck", subjects=8, per_subject={"happy": 3, "sadness": 3})
    dataset = load_split(str(ckplus), "train")
    train_set, held_out, rows = search.split_for_search(dataset, SearchSettings(holdout=0.25))
    assert len(held_out) and not set(train_set.groups) & set(held_out.groups)
    np.testing.assert_array_equal(dataset.groups[rows], held_out.groups)


def test_joining_a_study_with_other_faces_of_the_same_name_and_count_is_refused(
    tmp_path: Path
):
    """Name and count alone let other data join, whose trials held out other faces."""
    settings = SearchSettings(runs_dir=tmp_path / "runs", epochs=1, batch_size=16, threads=1,
                              families=("vgg",), widths=(4,), max_depth=1, holdout=0.25)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    first = load_split(str(write_class_folders(tmp_path / "a" / "faces", {"train": 4})), "train")
    other = load_split(str(write_class_folders(tmp_path / "b" / "faces", {"train": 4}, seed=1)),
                       "train")
    assert (first.name, len(first)) == (other.name, len(other))
    run_search(first, "fer", storage, 1, None, settings)
    with pytest.raises(UserError, match="searched with other settings \\(data "):
        run_search(other, "fer", storage, 1, None, settings)
    run_search(first, "fer", storage, 1, None, settings)
