"""Train one expression CNN, with checkpoints to resume from and a JSON-lines log.

A run lives in one folder: ``config.json`` (what was asked), ``class_counts.json``
(the examples per class the model trained on after balancing, and the loss
weights), ``log.jsonl`` (one line per epoch), ``last.pt`` (resume point, written
every epoch) and ``best.pt`` (the weights with the best held-out accuracy).
Running the same command again resumes from ``last.pt``. Only ``RESUMABLE`` settings
may differ on resume (``check_run_folder``): any other change would load weights into
a network of another shape, or carry on a run under settings its record does not show.
One process at a time trains in a folder, holding a lock on its ``.train.lock``.

Targets are the dataset's hard labels, or its ``soft_labels`` when it has them
(FER+ vote distributions, or labels blended with a teacher's vote by
``memegen.training.distill``): cross-entropy then takes probability targets.
``teacher`` (its manifest's resolved path), ``teacher_digest`` and ``teacher_share`` in
the config only record where such targets came from; the caller blends them. Likewise
``focus`` and ``focus_copies`` record which faces the caller repeated
(``memegen.training.focus``).

``mixup`` above 0 blends each batch's faces and targets in pairs (``augment.mix_up``,
Beta(mixup, mixup)); 0 leaves them alone, as every run before it did.

``early_epochs`` above 0 trains the first epochs on faces scaled down to
``early_side`` pixels (``training_faces``): a pass over a 32 px face costs about
(32/48)² of one over a 48 px face, so the same two hours hold more epochs. The
rest of the run is at full size, and the held-out faces are always scored at full
size, so the best epoch is picked as the network will be read.

``average_epochs`` above 0 makes the last epochs a stochastic weight average (Izmailov
et al., 2018): they run at the constant ``learning_rate`` instead of the one-cycle
schedule (which then spans the epochs before them), the weights at the end of each are
averaged (``WeightAverage``), and the average, its BatchNorm statistics recomputed, is
what those epochs score on the held-out faces and may keep as ``best.pt`` (which, as
always, holds the best-scoring epoch: when every epoch is averaged, the best of the
averages). Adam's first beta is back at its default there. Meant for a run that
starts from trained weights (``init_from``) at a rate high enough to keep them moving;
see experiments/fer2013-vgg24-long-swa.

``precision="bf16"`` runs the forward and backward passes under bfloat16
autocast (weights, optimiser state and held-out scoring stay float32). On a CPU
with AVX-512 BF16 that halves the time per step; on one without, it is slower.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import pickle
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from memegen import LABELS
from memegen.errors import UserError
from memegen.training.architectures import FAMILIES, HEADS, build
from memegen.training.augment import AugmentConfig, augment, mix_up
from memegen.training.balance import STRATEGIES, balance
from memegen.training.datasets import FaceDataset, image_digests

PRECISIONS = ("fp32", "bf16")
# The VGG and separable families halve a face four times (the ResNet three): a 16 px face
# ends as one cell there, a smaller one as none.
MIN_EARLY_SIDE = 16
# Augmented training batches whose activations give an averaged network its BatchNorm
# statistics (about two fifths of an epoch of FER2013).
BATCH_NORM_BATCHES = 80
# Seeds the batches that measure an averaged network's statistics, one stream for each
# (seed, epoch): the prime stride keeps two seeds' epochs from sharing one.
BATCH_NORM_SEED_STRIDE = 10_007
# What may change when a run resumes: the schedule is re-planned for a new ``epochs``
# (``_one_cycle``), and ``threads`` only sets how fast the same steps run.
RESUMABLE = ("epochs", "threads")
# The settings that give a network its shape: a checkpoint loads only into its own.
ARCHITECTURE = ("family", "width", "depth", "head")
# The file in a run folder whose lock the process training there holds.
LOCK_NAME = ".train.lock"


class RunError(UserError):
    """A run folder or checkpoint that the settings asked for cannot continue from; the
    message names it and each setting that differs."""


@dataclass
class TrainConfig:
    family: str = "vgg"
    width: int = 24
    depth: int = 2
    head: str = "pool"
    dropout: float = 0.3
    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 3e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    seed: int = 0
    threads: int = 2
    mean: float = 0.5
    std: float = 0.25
    balance: str = "none"
    init_from: str = ""
    teacher: str = ""
    teacher_digest: str = ""
    teacher_share: float = 0.0
    focus: str = ""
    focus_copies: int = 0
    precision: str = "fp32"
    mixup: float = 0.0
    early_side: int = 0
    early_epochs: int = 0
    average_epochs: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        """Refuse what would fail only later, after the data is loaded and the run folder
        written (an unknown family), or train nothing (no epochs). Each value comes from a
        flag or a run's config.json, so a refusal is the user's to fix: a ``UserError``."""
        for name, known in (("family", FAMILIES), ("head", HEADS), ("balance", STRATEGIES)):
            if getattr(self, name) not in known:
                raise UserError(
                    f"unknown {name} {getattr(self, name)!r}; choose from {', '.join(known)}"
                )
        # The separable family's stem has width // 2 channels, so 2 is the least width.
        for name, least in (("width", 2), ("depth", 1), ("epochs", 1), ("batch_size", 1),
                            ("threads", 1), ("focus_copies", 0)):
            if getattr(self, name) < least:
                raise UserError(f"{name} must be at least {least}, not {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise UserError(f"the learning rate must be above 0, not {self.learning_rate}")
        if not 0.0 <= self.teacher_share <= 1.0:
            raise UserError(f"the teacher's share must be from 0 to 1, not {self.teacher_share}")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; choose from {PRECISIONS}")
        if self.mixup < 0:
            raise UserError(f"the mixup alpha must be at least 0, not {self.mixup}")
        if self.early_epochs and self.early_side < MIN_EARLY_SIDE:
            raise UserError(
                f"the early side must be at least {MIN_EARLY_SIDE} px, not {self.early_side}"
            )
        if not 0 <= self.early_epochs < self.epochs:
            raise UserError(
                f"early epochs must be at least 0 and fewer than the {self.epochs} epochs, "
                f"not {self.early_epochs}: the last epochs train at the size the network is read at"
            )
        if not 0 <= self.average_epochs <= self.epochs - self.early_epochs:
            raise UserError(
                f"averaged epochs must be from 0 to the {self.epochs - self.early_epochs} "
                f"epochs at full size, not {self.average_epochs}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UserError(
                f"label smoothing must be at least 0 and below 1, not {self.label_smoothing}"
            )

    @classmethod
    def from_dict(cls, values: object) -> TrainConfig:
        """The config ``asdict`` saved (a run's config.json, a checkpoint's ``config``).
        Settings it lacks take their defaults, as the runs made before they existed trained;
        one of no known name or of the wrong type is a ``UserError`` naming it, since the
        file may have been edited by hand and would otherwise fail far from its cause."""
        if not isinstance(values, dict):
            raise UserError(f"the settings are a JSON {type(values).__name__}, not an object")
        values = dict(values)
        augment_values = values.pop("augment", {})
        if not isinstance(augment_values, dict):
            raise UserError("the augment settings are not a JSON object")
        augment_values = {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in augment_values.items()
        }
        _check_setting_types(cls, values, "")
        _check_setting_types(AugmentConfig, augment_values, "augment.")
        return cls(**values, augment=AugmentConfig(**augment_values))


#: The Python types a saved setting of each annotation may hold: JSON writes a float that
#: is whole (``1.0``) as is, but a hand-edited file may say ``1``.
_SETTING_TYPES = {"int": (int,), "float": (int, float), "str": (str,)}


def _check_setting_types(kind: type, values: dict, prefix: str) -> None:
    """Raise ``UserError`` for a setting of ``values`` that ``kind`` (a dataclass whose
    fields are annotated ``int``, ``float``, ``str`` or ``tuple[float, float]``) has no
    field for, or whose value is not of its field's type."""
    annotations = {setting.name: setting.type for setting in dataclasses.fields(kind)}
    for name, value in values.items():
        if name not in annotations:
            raise UserError(f"unknown setting '{prefix}{name}'")
        annotation = annotations[name]
        if annotation == "tuple[float, float]":
            fits = isinstance(value, tuple) and len(value) == 2 and all(
                type(part) in _SETTING_TYPES["float"] for part in value)
        else:
            fits = type(value) in _SETTING_TYPES[annotation]
        if not fits:
            raise UserError(f"{prefix}{name} {value!r} is not of type {annotation}")


@dataclass
class TrainResult:
    best_accuracy: float
    best_epoch: int
    epochs_run: int
    seconds: float


def build_model(config: TrainConfig) -> torch.nn.Module:
    return build(
        config.family, len(LABELS), config.width, config.depth, config.dropout, config.head
    )


def _to_tensor(images: np.ndarray, config: TrainConfig) -> torch.Tensor:
    return torch.from_numpy(images).float().div_(255.0).unsqueeze(1)


def memory_format(config: TrainConfig) -> torch.memory_format:
    """Channels-last, which trains the residual families 1.5 to 2.2 times faster on a CPU, except
    where torch 2.13's CPU backward pass crashes with it (segmentation fault or heap
    corruption): the separable family up to width 16 and resnet up to width 8, as measured
    on an AVX-512 EPYC; the same networks train without it (docs/training.md)."""
    narrow = {"separable": 16, "resnet": 8}.get(config.family, 0)
    return torch.contiguous_format if config.width <= narrow else torch.channels_last


def training_faces(batch: torch.Tensor, config: TrainConfig, epoch: int) -> torch.Tensor:
    """The augmented batch as epoch ``epoch`` (counted from 0) trains on it: scaled down to
    ``early_side`` in the first ``early_epochs``, as it is after them.

    Antialiased bilinear shrinking averages the pixels a small face would blend, so an
    early epoch sees the same face with less detail, not an aliased copy of it.
    """
    if epoch >= config.early_epochs:
        return batch
    side = (config.early_side, config.early_side)
    return F.interpolate(batch, size=side, mode="bilinear", antialias=True, align_corners=False)


def _normalise(batch: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    return ((batch - config.mean) / config.std).contiguous(memory_format=memory_format(config))


class ExportedProbabilities(torch.nn.Module):
    """Softmax of the network; with ``mirror``, averaged with the softmax on the mirrored crop.

    This is the graph ``export`` writes, and ``predict_probabilities`` runs the
    same module, so held-out numbers and vote weights describe what ships.
    """

    def __init__(self, network: torch.nn.Module, mirror: bool = True) -> None:
        super().__init__()
        self.network = network
        self.mirror = mirror

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        direct = F.softmax(self.network(faces), dim=1)
        if not self.mirror:
            return direct
        mirrored = F.softmax(self.network(torch.flip(faces, dims=[3])), dim=1)
        return (direct + mirrored) / 2


@torch.no_grad()
def predict_probabilities(
    model: torch.nn.Module,
    images: np.ndarray,
    config: TrainConfig,
    batch_size: int = 512,
    mirror: bool = True,
) -> np.ndarray:
    """Class probabilities for grey uint8 crops, as the exported graph computes them."""
    model.eval()
    exported = ExportedProbabilities(model, mirror)
    pixels = _to_tensor(images, config)
    outputs = [
        exported(_normalise(pixels[start : start + batch_size], config)).numpy()
        for start in range(0, len(pixels), batch_size)
    ]
    return np.concatenate(outputs)


def train(
    config: TrainConfig,
    train_set: FaceDataset,
    val_set: FaceDataset,
    run_dir: Path,
    class_weights: np.ndarray | None = None,
    on_epoch=None,
    held_out_rows: np.ndarray | None = None,
) -> TrainResult:
    """Train (or resume) the run in ``run_dir``; ``on_epoch(epoch, accuracy)`` may raise to stop.

    ``config.balance`` picks the examples (see ``balance``); ``class_weights``
    weights the loss per class, given here or by ``weighted`` balancing, not both.
    ``held_out_rows``, the rows of the training split that ``val_set`` holds, are
    recorded with their faces' digests in a new run, and checked against the record of
    one that resumes (``check_holdout``).

    The folder is this process's alone until it returns (``_writing``), and is checked
    again once it is: another fit may have trained there since the caller checked it.
    A training loss or held-out probabilities that are not finite stop the run with a
    ``RunError``, before the epoch is saved: its checkpoints keep the last good epoch.
    """
    with _writing(run_dir):
        check_run_folder(config, run_dir)
        if held_out_rows is not None:
            digests = image_digests(val_set.images)
            check_holdout(run_dir, held_out_rows, digests)
            save_holdout(run_dir, held_out_rows, digests)
        return _train(config, train_set, val_set, run_dir, class_weights, on_epoch)


@contextmanager
def _writing(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir`` (made if need be) for this process alone, or raise ``RunError``.

    Two processes training in one folder interleave their epochs in its log, keep
    whichever ``best.pt`` was saved last, and can move each other's partial checkpoint
    away mid-save. The lock is ``flock``'s, so the system frees it when the process ends,
    however it ends: a killed run leaves no stale lock behind.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_NAME, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError(
                f"{run_dir}: another fit is writing this run folder now; wait until it "
                "ends, or give another run folder"
            ) from None
        yield


def _train(
    config: TrainConfig,
    train_set: FaceDataset,
    val_set: FaceDataset,
    run_dir: Path,
    class_weights: np.ndarray | None,
    on_epoch,
) -> TrainResult:
    """``train``'s epochs, in a folder this process holds and has checked."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    if config.balance != "none":
        chosen, balance_weights = balance(
            train_set.labels, config.balance, len(LABELS), config.seed
        )
        if balance_weights is not None and class_weights is not None:
            raise ValueError("class_weights given twice: by the caller and by weighted balancing")
        train_set = train_set.subset(chosen)
        class_weights = class_weights if balance_weights is None else balance_weights
    _write_class_counts(run_dir, config, train_set, val_set, class_weights)

    model = build_model(config).to(memory_format=memory_format(config))
    last_path = run_dir / "last.pt"
    if config.init_from and not last_path.exists():
        model.load_state_dict(torch.load(config.init_from, weights_only=False)["model"])
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = max(1, len(train_set) // config.batch_size)
    generator = torch.Generator().manual_seed(config.seed)
    state = {"epoch": 0, "best_accuracy": -1.0, "best_epoch": -1, "seconds": 0.0}
    average = WeightAverage()
    if last_path.exists():
        checkpoint = torch.load(last_path, weights_only=False)
        model.load_state_dict(checkpoint["model"])
        optimiser.load_state_dict(checkpoint["optimiser"])
        generator.set_state(checkpoint["generator"])
        state = checkpoint["state"]
        average = WeightAverage(**checkpoint.get("average", {}))
    cycle_epochs = config.epochs - config.average_epochs
    scheduler = _one_cycle(optimiser, config, cycle_epochs, steps_per_epoch, state["epoch"])

    pixels = _to_tensor(train_set.images, config)
    labels = torch.from_numpy(train_set.labels)
    soft = train_set.soft_labels
    targets = labels if soft is None else torch.from_numpy(np.asarray(soft, dtype=np.float32))
    loss_weights = None if class_weights is None else torch.as_tensor(class_weights).float()

    while state["epoch"] < config.epochs:
        started = time.perf_counter()
        averaging = state["epoch"] >= cycle_epochs
        if averaging:  # the one-cycle moved both the rate and Adam's first beta
            for group in optimiser.param_groups:
                group.update(lr=config.learning_rate, betas=optimiser.defaults["betas"])
        model.train()
        order = torch.randperm(len(labels), generator=generator)
        total_loss = 0.0
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            faces = augment(pixels[index], config.augment, generator)
            batch = _normalise(training_faces(faces, config, state["epoch"]), config)
            batch_targets = targets[index]
            if config.mixup > 0:
                batch, batch_targets = mix_up(
                    batch, batch_targets, config.mixup, len(LABELS), generator
                )
            with torch.autocast("cpu", torch.bfloat16, enabled=config.precision == "bf16"):
                logits = model(batch)
            loss = F.cross_entropy(
                logits.float(),
                batch_targets,
                weight=loss_weights,
                label_smoothing=config.label_smoothing,
            )
            step_loss = loss.item()
            if not math.isfinite(step_loss):
                raise _diverged(run_dir, state["epoch"], f"the training loss became {step_loss}")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            if not averaging:
                scheduler.step()
            total_loss += step_loss

        scored = model
        if averaging:
            average.add(model)
            scored = average.network(config, pixels, state["epoch"])
        probabilities = predict_probabilities(scored, val_set.images, config)
        if not np.isfinite(probabilities).all():  # the epoch's last steps broke the weights
            raise _diverged(run_dir, state["epoch"], "its held-out probabilities are not finite")
        accuracy = float((probabilities.argmax(1) == val_set.labels).mean())
        state["epoch"] += 1
        state["seconds"] += time.perf_counter() - started
        if accuracy > state["best_accuracy"]:
            state["best_accuracy"], state["best_epoch"] = accuracy, state["epoch"]
            best = {"model": scored.state_dict(), "config": asdict(config)}
            save_checkpoint(best, run_dir / "best.pt")
        save_checkpoint(
            {
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "generator": generator.get_state(),
                "state": state,
                "average": average.checkpoint(),
            },
            last_path,
        )
        line = {
            "epoch": state["epoch"],
            "loss": round(total_loss / steps_per_epoch, 4),
            "val_accuracy": round(accuracy, 4),
            "seconds": round(state["seconds"], 1),
        }
        if averaging:
            line["averaged_epochs"] = average.count
        with open(run_dir / "log.jsonl", "a") as log:
            log.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)
        if on_epoch is not None:
            on_epoch(state["epoch"], accuracy)

    return TrainResult(
        state["best_accuracy"], state["best_epoch"], state["epoch"], state["seconds"]
    )


def _diverged(run_dir: Path, epochs_saved: int, what: str) -> RunError:
    """The refusal of a run whose weights have diverged, in the epoch after
    ``epochs_saved``: training on would only save weights that read nothing."""
    kept = (f"its checkpoints keep epoch {epochs_saved}" if epochs_saved
            else "no epoch was saved")
    return RunError(
        f"{run_dir}: {what} in epoch {epochs_saved + 1}, so the run stopped ({kept}); "
        "train it again with a lower --learning-rate in another run folder"
    )


def check_run_folder(config: TrainConfig, run_dir: Path) -> None:
    """Raise :class:`RunError` unless ``config`` can train in ``run_dir``; nothing is written.

    A folder with ``last.pt`` holds a run that ``train`` resumes, so its ``config.json``
    must agree with ``config`` but for ``RESUMABLE`` settings: otherwise the saved weights
    would not fit the network, or would carry on under settings the record no longer
    shows; nor may ``epochs`` fall below those already trained, and ``last.pt``'s weights
    must be those of the network ``config.json`` describes. A new run's ``init_from``
    checkpoint must have been trained with ``config``'s architecture. Checked before the
    caller loads data or writes the folder, so a refused command leaves it as it was.
    """
    if (run_dir / "last.pt").exists():
        config_path = run_dir / "config.json"
        if not config_path.is_file():
            raise RunError(f"{run_dir} holds last.pt but no config.json: it cannot be resumed")
        saved = _saved_config(config_path)
        if saved.teacher and not saved.teacher_digest:
            # Made before teachers were recorded resolved and digested: its teacher is the
            # path as typed, from where the run was started.
            saved = replace(saved, teacher=str(Path(saved.teacher).resolve()),
                            teacher_digest=config.teacher_digest)
        changed = _differences(saved, config, _flat_settings(config).keys() - set(RESUMABLE))
        if changed:
            raise RunError(
                f"{run_dir} holds a run trained with other settings ({changed}); only "
                f"{' and '.join(RESUMABLE)} may change when it resumes: give its settings "
                "again, or another run folder"
            )
        done, weights = _resume_point(run_dir / "last.pt")
        _check_weights_fit(saved, weights, run_dir / "last.pt", config_path)
        if config.epochs < done:
            raise RunError(
                f"{run_dir} has trained {done} epochs already; --epochs must be at least {done} "
                "to resume it"
            )
        stretch_start = min(saved.epochs, config.epochs) - saved.average_epochs
        if config.epochs != saved.epochs and done > stretch_start:
            raise RunError(
                f"{run_dir} averages its last {saved.average_epochs} of {saved.epochs} epochs "
                f"and has trained {done}: with {config.epochs} the averaged epochs would not "
                f"all be averaged; --epochs must stay {saved.epochs} to resume it"
            )
    elif config.init_from:
        saved = TrainConfig.from_dict(_checkpoint_config(Path(config.init_from)))
        changed = _differences(saved, config, ARCHITECTURE)
        if changed:
            raise RunError(
                f"{config.init_from} holds a network of another architecture ({changed}); "
                "a run starts from weights only of its own shape"
            )


def _saved_config(config_path: Path) -> TrainConfig:
    """The settings a run to resume saved in ``config_path``; a file that does not hold
    them (cut short, edited by hand) is a ``RunError`` naming it."""
    try:
        return TrainConfig.from_dict(json.loads(config_path.read_text()))
    except UserError as error:
        raise RunError(f"{config_path}: {error}; the run cannot be resumed") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(
            f"{config_path}: not the JSON settings train wrote ({error}); the run cannot "
            "be resumed"
        ) from None


def _resume_point(last_path: Path) -> tuple[int, dict]:
    """The epochs the run whose resume point is ``last_path`` has trained, and its weights;
    mapped, not read, since ``train`` reads them once the run is cleared to resume."""
    try:
        checkpoint = torch.load(last_path, weights_only=False, mmap=True)
        return int(checkpoint["state"]["epoch"]), dict(checkpoint["model"])
    except (pickle.UnpicklingError, EOFError, RuntimeError, KeyError, TypeError, ValueError):
        raise RunError(
            f"{last_path}: not a resume point that train wrote; it cannot be resumed"
        ) from None


def _check_weights_fit(
    saved: TrainConfig, weights: dict, last_path: Path, config_path: Path
) -> None:
    """Raise ``RunError`` unless ``weights`` (``last_path``'s) are those of the network
    ``saved`` (``config_path``'s) builds: an edited config.json would otherwise fail deep
    in torch when ``train`` loads them."""
    expected = {name: tuple(value.shape) for name, value in build_model(saved).state_dict().items()}
    found = {name: tuple(getattr(value, "shape", ())) for name, value in weights.items()}
    if found != expected:
        raise RunError(
            f"{last_path}: its weights are not those of the network {config_path} describes "
            "(was the file edited?); the run cannot be resumed"
        )


def save_checkpoint(checkpoint: dict, path: Path) -> None:
    """Write ``checkpoint`` whole or not at all: a run stopped while saving keeps its last
    resume point, rather than one cut short that no later run can load."""
    partial = path.with_name(f".{path.name}.part")
    torch.save(checkpoint, partial)
    os.replace(partial, path)


def _read_checkpoint(path: Path) -> dict:
    """A checkpoint ``train`` or ``rebuild`` wrote as ``best.pt``, with its config; any
    other file is a :class:`RunError` naming it."""
    try:
        checkpoint = torch.load(path, weights_only=False)
    except (pickle.UnpicklingError, EOFError):
        raise RunError(f"{path}: not a checkpoint; give a run's best.pt") from None
    if not isinstance(checkpoint, dict) or "config" not in checkpoint:
        raise RunError(f"{path}: a checkpoint without its config; give a run's best.pt")
    return checkpoint


def _checkpoint_config(path: Path) -> dict:
    """The config saved in a checkpoint ``train`` or ``rebuild`` wrote as ``best.pt``."""
    return _read_checkpoint(path)["config"]


def _flat_settings(config: TrainConfig) -> dict:
    """Every setting by name, the augmentation's as ``augment.NAME``."""
    values = asdict(config)
    augment_values = values.pop("augment")
    return values | {f"augment.{name}": value for name, value in augment_values.items()}


def _differences(saved: TrainConfig, asked: TrainConfig, names: Iterable[str]) -> str:
    """Each of ``names`` whose value differs, as 'NAME SAVED (saved) against ASKED (asked)'."""
    before, after = _flat_settings(saved), _flat_settings(asked)
    return "; ".join(
        f"{name} {before[name]!r} (saved) against {after[name]!r} (asked)"
        for name in sorted(names) if before[name] != after[name]
    )


def check_holdout(run_dir: Path, indices: np.ndarray, digests: np.ndarray) -> None:
    """Raise :class:`RunError` if a run that resumes in ``run_dir`` held out other faces
    than ``indices`` (rows of the training split) and ``digests`` (their pixels).

    Its best epoch was picked on the faces it held out, and ensembles weigh it on them:
    holding out others now would train on those and score on faces it learned.
    """
    if not (run_dir / "last.pt").exists():
        return
    for name, asked in (("holdout_indices.npy", indices), ("holdout_digests.npy", digests)):
        path = run_dir / name
        if path.is_file() and not np.array_equal(np.load(path), asked):
            raise RunError(
                f"{run_dir} held out other faces than these settings and data hold out "
                f"({name} differs); resume it with its own --data, --holdout or "
                "--holdout-from, or give another run folder"
            )


def save_holdout(run_dir: Path, indices: np.ndarray, digests: np.ndarray) -> None:
    """Record which faces a new run holds out; a resumed run keeps the record it has
    (``check_holdout`` compared it)."""
    if (run_dir / "last.pt").exists():
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    np.save(run_dir / "holdout_indices.npy", indices)
    np.save(run_dir / "holdout_digests.npy", digests)


def _write_class_counts(
    run_dir: Path,
    config: TrainConfig,
    train_set: FaceDataset,
    val_set: FaceDataset,
    class_weights: np.ndarray | None,
) -> None:
    """Record what the model really sees, which balancing changes from what the data holds."""
    record = {
        "balance": config.balance,
        "trained_on": train_set.class_counts(),
        "loss_weights": None
        if class_weights is None
        else {label: round(float(w), 6) for label, w in zip(LABELS, class_weights, strict=True)},
        "soft_labels": train_set.soft_labels is not None,
        "held_out": val_set.class_counts(),
    }
    (run_dir / "class_counts.json").write_text(json.dumps(record, indent=2) + "\n")


def _one_cycle(
    optimiser: torch.optim.Optimizer,
    config: TrainConfig,
    cycle_epochs: int,
    steps_per_epoch: int,
    epochs_done: int,
) -> torch.optim.lr_scheduler.OneCycleLR | None:
    """The one-cycle schedule over the ``cycle_epochs`` before any averaged ones (None if
    every epoch is averaged), wound forward to where a resumed run stopped.

    Rebuilding it from the config (rather than restoring its saved state) lets a
    run resume with a different ``epochs``: the rest of the cycle is re-planned.
    """
    if cycle_epochs == 0:
        return None
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser,
        max_lr=config.learning_rate,
        epochs=cycle_epochs,
        steps_per_epoch=steps_per_epoch,
        pct_start=0.15,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(min(epochs_done, cycle_epochs) * steps_per_epoch):
            scheduler.step()
    return scheduler


class WeightAverage:
    """The running mean of a network's weights, taken at the end of each averaged epoch.

    BatchNorm's running statistics are not averaged but recomputed (``network``): they
    were collected on activations of the epochs' own weights, which the average never
    had. ``state`` and ``count`` come back from a checkpoint on resume.
    """

    def __init__(self, state: dict[str, torch.Tensor] | None = None, count: int = 0) -> None:
        self.state = state
        self.count = count

    def add(self, model: torch.nn.Module) -> None:
        weights = {name: value.detach().float().clone()
                   for name, value in model.state_dict().items() if value.is_floating_point()}
        self.count += 1
        if self.state is None:
            self.state = weights
            return
        for name, value in weights.items():
            self.state[name] += (value - self.state[name]) / self.count

    def network(self, config: TrainConfig, pixels: torch.Tensor, epoch: int) -> torch.nn.Module:
        """The averaged network, its BatchNorm statistics measured on augmented training
        faces (``pixels``, as ``train`` holds them) drawn for ``epoch``, so a resumed run
        measures the same ones."""
        model = build_model(config).to(memory_format=memory_format(config))
        model.load_state_dict({**model.state_dict(), **self.state})
        norms = [module for module in model.modules()
                 if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a plain mean over the batches, not a moving one
        generator = torch.Generator().manual_seed(config.seed * BATCH_NORM_SEED_STRIDE + epoch)
        order = torch.randperm(len(pixels), generator=generator)
        batches = max(1, min(BATCH_NORM_BATCHES, len(pixels) // config.batch_size))
        model.train()
        with torch.no_grad():
            for batch in range(batches):  # whole batches, as training takes them
                index = order[batch * config.batch_size : (batch + 1) * config.batch_size]
                model(_normalise(augment(pixels[index], config.augment, generator), config))
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        return model.eval()

    def checkpoint(self) -> dict:
        return {"state": self.state, "count": self.count}


def load_trained(run_dir: Path) -> tuple[torch.nn.Module, TrainConfig]:
    """The best weights of a finished run and the config that built them."""
    checkpoint = _read_checkpoint(run_dir / "best.pt")
    config = TrainConfig.from_dict(checkpoint["config"])
    model = build_model(config)
    model.load_state_dict(checkpoint["model"])
    return model.eval(), config
