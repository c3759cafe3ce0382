"""Search architectures and training settings with Optuna, under a time budget.

Each trial picks a family (vgg, separable, resnet), width, depth, head, learning
rate, dropout, class balancing and augmentation strength, trains one run with
``train.train`` (its folder ``RUNS/STUDY/trial-NNNN`` can go straight into the
ensemble, weighed on the faces every trial held out) and is scored by its best
held-out accuracy. After every epoch the trial reports to Optuna and a median
pruner stops trials that trail the others, so the budget goes to promising
settings.

The study lives in a database given as a SQLAlchemy URL (default
``sqlite:///runs/search.db``): running the same command again resumes it, and
several processes (or machines, with a shared database server) given the same
URL and study name work on one study together. Heartbeats let a later process
mark trials of a killed one as failed and retry their settings once.

A trial trains only in a folder it made itself: ``train`` resumes any run folder it is
given, so a new trial handed a folder left by a study since deleted or kept in another
database would take that run's score for its own settings. A search refuses to start
while ``RUNS/STUDY`` holds trial folders its study did not make.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import optuna
import sqlalchemy.exc

from memegen.errors import UserError
from memegen.training.architectures import FAMILIES, HEADS
from memegen.training.augment import AugmentConfig
from memegen.training.balance import STRATEGIES
from memegen.training.datasets import FaceDataset, holdout_split, stratified_split
from memegen.training.train import TrainConfig, train


@dataclass(frozen=True)
class SearchSettings:
    """What stays fixed across trials, and the bounds of what the search may try."""

    runs_dir: Path = Path("runs/search")
    epochs: int = 8
    batch_size: int = 128
    threads: int = 2
    precision: str = "fp32"
    holdout: float = 0.1
    subset: float = 1.0
    seed: int = 0
    families: tuple[str, ...] = FAMILIES
    widths: tuple[int, ...] = (16, 24, 32, 48)
    max_depth: int = 3
    heads: tuple[str, ...] = HEADS

    def __post_init__(self) -> None:
        """Refuse what would fail every trial, before the data is loaded or the study
        opened: a failed trial stays in the study's database. The settings are the user's
        flags, so a refusal is a ``UserError``; the fixed settings and every family, width
        and head go through ``TrainConfig``'s own checks."""
        if not 0.0 < self.holdout < 1.0:
            raise UserError(f"holdout must be above 0 and below 1, not {self.holdout}")
        if not 0.0 < self.subset <= 1.0:
            raise UserError(f"subset must be above 0 and at most 1, not {self.subset}")
        for name in ("families", "widths", "heads"):
            if not getattr(self, name):
                raise UserError(f"no {name} to try")
        fixed = TrainConfig(
            depth=self.max_depth, epochs=self.epochs, batch_size=self.batch_size,
            threads=self.threads, precision=self.precision, seed=self.seed,
        )
        for family in self.families:
            replace(fixed, family=family)
        for width in self.widths:
            replace(fixed, width=width)
        for head in self.heads:
            replace(fixed, head=head)


def suggest_config(trial: optuna.Trial, settings: SearchSettings) -> TrainConfig:
    """The training config this trial tries."""
    strength = trial.suggest_float("augment_strength", 0.0, 1.0)
    return TrainConfig(
        family=trial.suggest_categorical("family", settings.families),
        width=trial.suggest_categorical("width", settings.widths),
        depth=trial.suggest_int("depth", 1, settings.max_depth),
        head=trial.suggest_categorical("head", settings.heads),
        dropout=trial.suggest_float("dropout", 0.0, 0.5),
        learning_rate=trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
        balance=trial.suggest_categorical("balance", STRATEGIES),
        augment=AugmentConfig().scaled(strength),
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        threads=settings.threads,
        precision=settings.precision,
        seed=settings.seed,
    )


def open_study(name: str, storage_url: str, trials_folder: Path) -> optuna.Study:
    """Create the study, or join it if it exists (another process may be creating it now).

    A new study is not created while ``trials_folder`` holds trial folders, which no trial
    of it made (see :func:`check_trial_folders`): a refused search leaves no empty study."""
    engine_kwargs = {}
    prefix = "sqlite:///"
    if storage_url.startswith(prefix):
        database = storage_url[len(prefix) :]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Concurrent writers wait for sqlite's file lock instead of failing at once.
        engine_kwargs["connect_args"] = {"timeout": 60}
    try:
        with warnings.catch_warnings():
            # Heartbeats are marked experimental in Optuna, and have been since 2.8.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = _connect(storage_url, engine_kwargs)
        if not _has_study(storage, name):
            try:
                check_trial_folders(None, trials_folder)
            except UserError:
                # Another process may have created the study and its first trial's folder
                # since the listing: then this one joins, and the caller checks the
                # folders against the study's trials.
                if not _has_study(storage, name):
                    raise
        return optuna.create_study(
            study_name=name,
            storage=storage,
            direction="maximize",
            load_if_exists=True,
            pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1),
        )
    except sqlalchemy.exc.SQLAlchemyError as error:
        reason = str(error.orig if getattr(error, "orig", None) else error).splitlines()[0]
        raise UserError(
            f"--storage {storage_url!r}: no study database can be opened there ({reason})"
        ) from None


def _has_study(storage: optuna.storages.BaseStorage, name: str) -> bool:
    return name in {study.study_name for study in storage.get_all_studies()}


def _connect(storage_url: str, engine_kwargs: dict) -> optuna.storages.RDBStorage:
    """Open the database, creating Optuna's tables on first use.

    Two processes starting together on a new database both try to create the
    tables and one fails ("table ... already exists", a duplicate schema version);
    a retry finds them made.
    """

    def attempt() -> optuna.storages.RDBStorage:
        return optuna.storages.RDBStorage(
            storage_url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=30,
            grace_period=120,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1
            ),
        )

    for retry in range(4):
        try:
            return attempt()
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            time.sleep(0.5 * (retry + 1))
    return attempt()


def split_for_search(
    dataset: FaceDataset, settings: SearchSettings
) -> tuple[FaceDataset, FaceDataset, np.ndarray]:
    """(train, held-out) sets: a stratified ``subset`` of the data, then a holdout as ``fit``
    takes it (:func:`holdout_split`); and the held-out faces' rows in ``dataset``.

    Every trial sees the same split, so their scores compare. Each trial folder records the
    rows as ``fit`` does, so trials go into ``ensemble --indices`` weighed on faces none of
    them trained on.
    """
    rows = np.arange(len(dataset))
    if settings.subset < 1.0:
        rows = stratified_split(dataset.labels, settings.subset, settings.seed)[1]
    searched = dataset.subset(rows)
    kept, held_out = holdout_split(searched, settings.holdout, settings.seed)
    return (
        searched.subset(kept),
        searched.subset(held_out, f"{searched.name}-holdout"),
        rows[held_out],
    )


def run_search(
    dataset: FaceDataset,
    study_name: str,
    storage_url: str,
    trials: int,
    timeout: float | None,
    settings: SearchSettings,
) -> optuna.Study:
    """Run up to ``trials`` trials in this process, starting none after ``timeout`` seconds."""
    train_set, val_set, held_out_rows = split_for_search(dataset, settings)
    trials_folder = settings.runs_dir / study_name
    study = open_study(study_name, storage_url, trials_folder)
    check_same_search(study, dataset, settings)
    check_trial_folders(study, trials_folder)
    worker = f"{socket.gethostname()}:{os.getpid()}"

    def objective(trial: optuna.Trial) -> float:
        config = suggest_config(trial, settings)
        run_dir = settings.runs_dir / study_name / f"trial-{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", worker)
        try:
            run_dir.mkdir(parents=True)  # never one that exists: see check_trial_folders
        except FileExistsError:
            raise _foreign_folder(run_dir) from None

        def report(epoch: int, accuracy: float) -> None:
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()

        return train(config, train_set, val_set, run_dir, on_epoch=report,
                     held_out_rows=held_out_rows).best_accuracy

    study.optimize(objective, n_trials=trials, timeout=timeout, gc_after_trial=True)
    return study


#: The settings every trial of a study must share, so that their scores compare and Optuna's
#: choices stay the same: only ``threads`` and where the runs go may change on resuming.
SHARED_SETTINGS = ("epochs", "batch_size", "precision", "holdout", "subset", "seed",
                   "families", "widths", "max_depth", "heads")


def check_same_search(study: optuna.Study, dataset: FaceDataset, settings: SearchSettings) -> None:
    """Record the data and ``SHARED_SETTINGS`` in a new study; for one that has them, raise
    :class:`UserError` naming what differs. Other choices of family, width or head made
    Optuna fail in the first trial (which stayed in the database as failed), and another
    holdout or data silently scored later trials on other faces. The data is recorded by
    a digest of its faces and labels as well as its name and size: another dataset of the
    same folder name and size holds out other faces."""
    asked = json.loads(json.dumps({
        "data": {"name": dataset.name, "faces": len(dataset), "digest": _data_digest(dataset)},
        **{name: getattr(settings, name) for name in SHARED_SETTINGS},
    }))
    recorded = study.user_attrs.get("search")
    if recorded is None:
        study.set_user_attr("search", asked)
        return
    if "digest" not in recorded.get("data", {}):
        del asked["data"]["digest"]  # a study recorded before data digests were
    changed = [f"{name} {recorded.get(name)} (recorded) against {value} (asked)"
               for name, value in asked.items() if recorded.get(name) != value]
    if changed:
        raise UserError(
            f"study {study.study_name!r} searched with other settings ({'; '.join(changed)}); "
            "give its settings again, or another --study"
        )


def _data_digest(dataset: FaceDataset) -> str:
    """The first 16 hex digits of a SHA-256 digest of the faces, their labels and any soft
    labels, in order: what a trial's split and score depend on."""
    digest = hashlib.sha256(np.ascontiguousarray(dataset.images).tobytes())
    digest.update(np.ascontiguousarray(dataset.labels, dtype=np.int64).tobytes())
    if dataset.soft_labels is not None:
        digest.update(np.ascontiguousarray(dataset.soft_labels, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def check_trial_folders(study: optuna.Study | None, folder: Path) -> None:
    """Raise :class:`UserError` if ``folder`` (``RUNS/STUDY``) holds a trial folder that no
    trial of ``study`` made (None: a study not yet created, which made none), which a new
    trial of the same number would otherwise resume.

    Each trial records its folder before making it, so every folder a process of this
    study made is known, whichever process made it.
    """
    if not folder.is_dir():
        return
    trials = [] if study is None else study.get_trials(deepcopy=False)
    made = {Path(trial.user_attrs["run_dir"]).name for trial in trials
            if "run_dir" in trial.user_attrs}
    foreign = sorted(path for path in folder.glob("trial-*") if path.name not in made)
    if foreign:
        raise _foreign_folder(foreign[0])


def _foreign_folder(run_dir: Path) -> UserError:
    return UserError(
        f"{run_dir} was not made by a trial of this study (a study of the same name in "
        "another database, or one since deleted?), and a new trial would resume its run: "
        "give another --runs or --study, or remove the folder"
    )


def best_runs(study: optuna.Study, count: int) -> list[Path]:
    """Run folders of the ``count`` best finished trials, best first (candidates to ensemble)."""
    finished = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    ranked = sorted(finished, key=lambda trial: trial.value, reverse=True)
    return [Path(trial.user_attrs["run_dir"]) for trial in ranked[:count]]


def describe(study: optuna.Study, top: int = 5) -> str:
    """One JSON line: trial counts by state, the best trial and the best run folders."""
    states: dict[str, int] = {}
    for trial in study.get_trials():
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    runs = best_runs(study, top)
    summary: dict = {"study": study.study_name, "trials": states, "best_runs": list(map(str, runs))}
    if runs:
        summary["best"] = {"value": study.best_value, "params": study.best_params}
    return json.dumps(summary)
