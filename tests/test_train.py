"""``train.train``: soft targets, balancing, and what a run folder records."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from memegen import LABELS  # noqa: E402
from memegen.cli import main  # noqa: E402
from memegen.errors import UserError  # noqa: E402
from memegen.training import commands  # noqa: E402
from memegen.training.architectures import FAMILIES, HEADS, build  # noqa: E402
from memegen.training.augment import AugmentConfig  # noqa: E402
from memegen.training.datasets import FaceDataset  # noqa: E402
from memegen.training.train import (  # noqa: E402
    PRECISIONS,
    RunError,
    TrainConfig,
    WeightAverage,
    build_model,
    check_run_folder,
    train,
    training_faces,
)

from tiny_datasets import face, write_class_folders  # noqa: E402

TINY = {"family": "vgg", "width": 4, "depth": 1, "batch_size": 16, "threads": 1}


def _dataset(labels: list[int], soft: np.ndarray | None = None) -> FaceDataset:
    rng = np.random.default_rng(0)
    images = np.stack([face(label, rng) for label in labels])
    return FaceDataset("tiny", images, np.array(labels), soft)


def test_soft_labels_are_the_targets_when_present(tmp_path: Path):
    # Hard labels say "angry" for every face; the vote distributions say "happy".
    happy = LABELS.index("happy")
    soft = np.zeros((48, len(LABELS)), np.float32)
    soft[:, happy] = 1.0
    train_set = _dataset([0] * 48, soft)
    val_set = FaceDataset("val", train_set.images[:8], np.full(8, happy))
    config = TrainConfig(**TINY, epochs=4, learning_rate=1e-2, label_smoothing=0.0)
    result = train(config, train_set, val_set, tmp_path / "run")
    assert result.best_accuracy == 1.0
    assert json.loads((tmp_path / "run" / "class_counts.json").read_text())["soft_labels"]


def test_run_records_the_class_counts_the_model_trained_on(tmp_path: Path):
    labels = [0] * 20 + [1] * 5 + [2] * 3
    config = TrainConfig(**TINY, epochs=1, balance="oversample")
    train(config, _dataset(labels), _dataset([0, 1, 2]), tmp_path / "run")
    record = json.loads((tmp_path / "run" / "class_counts.json").read_text())
    assert record["balance"] == "oversample"
    assert [record["trained_on"][label] for label in LABELS[:4]] == [20, 20, 20, 0]
    assert record["loss_weights"] is None
    checkpoint = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert set(checkpoint) == {"model", "config"}
    assert checkpoint["config"]["balance"] == "oversample"


def test_weighted_balancing_records_its_loss_weights(tmp_path: Path):
    config = TrainConfig(**TINY, epochs=1, balance="weighted")
    train(config, _dataset([0, 0, 0, 1]), _dataset([0, 1]), tmp_path / "run")
    record = json.loads((tmp_path / "run" / "class_counts.json").read_text())
    assert record["trained_on"]["angry"] == 3
    # 4 examples, 2 classes present: 4/(2·3) and 4/(2·1)
    assert record["loss_weights"]["angry"] == pytest.approx(2 / 3, abs=1e-6)
    assert record["loss_weights"]["disgust"] == 2.0


def test_bfloat16_training_learns_and_keeps_float32_weights(tmp_path: Path):
    labels = [0, 3] * 24
    train_set = _dataset(labels)
    val_set = FaceDataset("val", train_set.images[:16], train_set.labels[:16])
    config = TrainConfig(**TINY, epochs=6, learning_rate=1e-2, precision="bf16")
    result = train(config, train_set, val_set, tmp_path / "run")
    assert result.best_accuracy >= 0.9
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "bf16"
    weights = torch.load(tmp_path / "run" / "best.pt", weights_only=False)["model"]
    assert {tensor.dtype for name, tensor in weights.items() if "num_batches" not in name} == {
        torch.float32
    }


def test_unknown_precision_is_refused_before_training():
    with pytest.raises(UserError, match="precision"):
        TrainConfig(**TINY, epochs=1, precision="fp16")


@pytest.mark.parametrize("smoothing", [-0.1, 1.0])
def test_label_smoothing_outside_zero_to_one_is_refused(smoothing: float):
    with pytest.raises(UserError, match="label smoothing"):
        TrainConfig(**TINY, label_smoothing=smoothing)


def test_negative_mixup_is_refused():
    with pytest.raises(UserError, match="mixup"):
        TrainConfig(**TINY, mixup=-0.2)


def test_mixup_training_learns_and_records_its_alpha(tmp_path: Path):
    labels = [0, 3] * 24
    train_set = _dataset(labels)
    val_set = FaceDataset("val", train_set.images[:16], train_set.labels[:16])
    config = TrainConfig(**TINY, epochs=6, learning_rate=1e-2, mixup=0.2)
    result = train(config, train_set, val_set, tmp_path / "run")
    assert result.best_accuracy >= 0.9
    assert json.loads((tmp_path / "run" / "config.json").read_text())["mixup"] == 0.2
    unmixed = TrainConfig(**TINY, epochs=6, learning_rate=1e-2)
    train(unmixed, train_set, val_set, tmp_path / "unmixed")

    def first_loss(run: str) -> float:
        return json.loads((tmp_path / run / "log.jsonl").read_text().splitlines()[0])["loss"]

    assert first_loss("run") != first_loss("unmixed")  # the blends reached the loss


def test_early_epochs_train_on_shrunk_faces_then_on_full_size_ones():
    config = TrainConfig(**TINY, epochs=4, early_epochs=2, early_side=16)
    faces = torch.rand(3, 1, 48, 48)
    for epoch in (0, 1):
        shrunk = training_faces(faces, config, epoch)
        assert shrunk.shape == (3, 1, 16, 16)
        # Antialiased: each small pixel averages its 3×3 block, so a face keeps its mean.
        torch.testing.assert_close(shrunk.mean(dim=(2, 3)), faces.mean(dim=(2, 3)), atol=0.02,
                                   rtol=0)
    assert training_faces(faces, config, 2) is faces


def test_run_with_early_epochs_learns_and_records_them(tmp_path: Path):
    labels = [0, 3] * 24
    train_set = _dataset(labels)
    val_set = FaceDataset("val", train_set.images[:16], train_set.labels[:16])
    config = TrainConfig(**TINY, epochs=6, learning_rate=1e-2, early_epochs=3, early_side=24)
    result = train(config, train_set, val_set, tmp_path / "run")
    assert result.best_accuracy >= 0.9
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["early_epochs"], saved["early_side"]) == (3, 24)


def test_a_weight_average_is_the_mean_of_the_weights_added():
    config = TrainConfig(**TINY)
    networks = [build_model(config) for _ in range(3)]
    average = WeightAverage()
    for network in networks:
        average.add(network)
    for name, value in networks[0].state_dict().items():
        if value.is_floating_point():
            expected = sum(network.state_dict()[name] for network in networks) / 3
            torch.testing.assert_close(average.state[name], expected)
    assert average.count == 3


def test_an_averaged_network_measures_its_batch_norm_statistics_afresh():
    """The running statistics are those of the average's own activations on training
    faces, not the mean of the networks' statistics."""
    config = TrainConfig(**TINY, augment=AugmentConfig().scaled(0.0))
    network = build_model(config)
    for norm in (m for m in network.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        norm.running_mean.fill_(5.0)
    average = WeightAverage()
    average.add(network)
    pixels = torch.rand(40, 1, 48, 48)
    averaged = average.network(config, pixels, epoch=0)
    first_norm = next(m for m in averaged.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not averaged.training
    assert first_norm.momentum == 0.1, "the momentum is put back for any later training"
    assert not torch.allclose(first_norm.running_mean, torch.full_like(first_norm.running_mean, 5))
    # Measured on the faces it was given: the same faces give the same statistics.
    again = average.network(config, pixels, epoch=0)
    torch.testing.assert_close(again.state_dict(), averaged.state_dict())


def test_averaged_epochs_run_at_a_constant_rate_and_keep_their_average(tmp_path: Path):
    labels = [0, 3] * 24
    train_set = _dataset(labels)
    val_set = FaceDataset("val", train_set.images[:16], train_set.labels[:16])
    config = TrainConfig(**TINY, epochs=4, average_epochs=2, learning_rate=1e-2)
    train(config, train_set, val_set, tmp_path / "run")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [line.get("averaged_epochs") for line in log] == [None, None, 1, 2]
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert last["average"]["count"] == 2
    assert last["optimiser"]["param_groups"][0]["lr"] == pytest.approx(1e-2)
    assert tuple(last["optimiser"]["param_groups"][0]["betas"]) == (0.9, 0.999)


class _Stopped(Exception):
    pass


def _stop_at(epoch_to_stop: int):
    def on_epoch(epoch: int, accuracy: float) -> None:
        if epoch == epoch_to_stop:
            raise _Stopped

    return on_epoch


def test_an_averaging_run_resumed_midway_ends_as_one_run_straight_through(tmp_path: Path):
    labels = [0, 3] * 24
    train_set = _dataset(labels)
    val_set = FaceDataset("val", train_set.images[:16], train_set.labels[:16])
    # No dropout: its draws come from torch's global generator, which a resumed run seeds
    # afresh; the batches and their augmentation resume exactly.
    config = TrainConfig(**TINY, epochs=3, average_epochs=3, learning_rate=1e-2, dropout=0.0)
    train(config, train_set, val_set, tmp_path / "whole")
    with pytest.raises(_Stopped):
        train(config, train_set, val_set, tmp_path / "resumed", on_epoch=_stop_at(2))
    train(config, train_set, val_set, tmp_path / "resumed")
    straight = torch.load(tmp_path / "whole" / "last.pt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    torch.testing.assert_close(resumed["model"], straight["model"])
    assert resumed["average"]["count"] == straight["average"]["count"] == 3
    torch.testing.assert_close(resumed["average"]["state"], straight["average"]["state"])


def test_averaged_epochs_beyond_the_full_size_ones_are_refused():
    with pytest.raises(UserError, match="averaged epochs must be from 0 to the 3 epochs"):
        TrainConfig(**TINY, epochs=5, early_epochs=2, early_side=24, average_epochs=4)


def test_fit_records_mixup_and_label_smoothing_and_refuses_bad_values(tmp_path: Path, capsys):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    tiny = ["--data", str(data), "--epochs", "1", "--batch-size", "8", "--width", "4",
            "--threads", "1", "--holdout", "0.25"]
    assert main(["train", "fit", "--out", str(tmp_path / "run"), "--mixup", "0.4",
                 "--label-smoothing", "0", *tiny]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["mixup"], config["label_smoothing"]) == (0.4, 0.0)

    assert main(["train", "fit", "--out", str(tmp_path / "bad"), "--mixup", "-1", *tiny]) == 2
    assert "mixup" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(("values", "message"), [
    ({"family": "nope"}, "unknown family 'nope'"),
    ({"head": "nope"}, "unknown head 'nope'"),
    ({"balance": "nope"}, "unknown balance 'nope'"),
    ({"width": 1}, "width must be at least 2"),
    ({"depth": 0}, "depth must be at least 1"),
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"batch_size": 0}, "batch_size must be at least 1"),
    ({"learning_rate": 0.0}, "learning rate must be above 0"),
    ({"teacher_share": 1.5}, "teacher's share must be from 0 to 1"),
    ({"early_epochs": 30, "early_side": 16}, "fewer than the 30 epochs, not 30"),
    ({"early_epochs": -1, "early_side": 16}, "early epochs must be at least 0"),
    ({"early_epochs": 2, "early_side": 8}, "early side must be at least 16 px, not 8"),
])
def test_config_refuses_what_would_fail_only_after_the_data_is_loaded(values, message):
    with pytest.raises(UserError, match=message):
        TrainConfig(**{**TINY, **values})


@pytest.mark.parametrize(("flags", "message"), [
    (["--family", "nope"], "unknown family 'nope'"),
    (["--width", "0"], "width must be at least 2"),
    (["--epochs", "0"], "epochs must be at least 1"),
    (["--holdout", "0"], "--holdout must be above 0 and below 1"),
    (["--holdout", "1"], "--holdout must be above 0 and below 1"),
    (["--low-resolution", "1.5"], "the low-resolution share must be between 0 and 1, not 1.5"),
    (["--epochs", "3", "--early-epochs", "3"], "fewer than the 3 epochs, not 3"),
    (["--early-epochs", "1", "--early-side", "12"], "early side must be at least 16 px, not 12"),
    (["--teacher-share", "0.3"], "--teacher-share is the share of a --teacher's vote; give "
     "--teacher too"),
])
def test_fit_refuses_bad_values_before_reading_data_or_writing_a_run(
    tmp_path: Path, capsys, flags: list[str], message: str
):
    # The data is not there: a refusal that names the value came before reading it.
    assert main(["train", "fit", "--data", str(tmp_path / "missing"),
                 "--out", str(tmp_path / "run"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_fit_on_a_missing_dataset_is_one_line_and_writes_no_run(tmp_path: Path, capsys):
    missing = tmp_path / "missing"
    assert main(["train", "fit", "--data", str(missing), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == f"memegen: {missing}: no such file or folder\n"
    assert not (tmp_path / "run").exists()


def test_fit_refuses_a_holdout_that_keeps_no_face_aside(tmp_path: Path, capsys):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    assert main(["train", "fit", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--holdout", "0.01"]) == 2
    assert "0 are held out" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("family, width", [("separable", 16), ("resnet", 8)])
def test_narrow_residual_networks_train_without_crashing(tmp_path: Path, family: str, width: int):
    # torch 2.13's CPU backward pass crashed on these with channels-last tensors (a separable
    # width 16 is in train search's default space), killing the process: run it in another.
    data = write_class_folders(tmp_path / "faces", {"train": 8})
    command = [sys.executable, "-m", "memegen", "train", "fit", "--data", str(data),
               "--out", str(tmp_path / "run"), "--family", family, "--width", str(width),
               "--depth", "1", "--epochs", "1", "--batch-size", "16", "--threads", "1",
               "--holdout", "0.25"]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert json.loads(finished.stdout.splitlines()[-1])["epochs_run"] == 1


def test_command_line_offers_every_training_precision_family_and_head():
    assert commands.PRECISIONS == PRECISIONS
    assert commands.FAMILIES == FAMILIES
    assert commands.HEADS == HEADS


def test_configs_written_before_heads_existed_load_with_the_pooling_head():
    config = TrainConfig.from_dict({"family": "vgg", "width": 8, "depth": 1})
    assert config.head == "pool"
    linears = [m for m in build_model(config).modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 64  # the pooled channels alone


@pytest.mark.parametrize("family", FAMILIES)
def test_only_the_grid_head_reads_where_on_the_face_a_feature_is(family: str):
    torch.manual_seed(0)
    networks = {head: build(family, 7, 4, 1, 0.0, head).eval() for head in HEADS}
    with torch.no_grad():
        features = networks["grid"][:-1](torch.rand(1, 1, 48, 48))
        upside_down = torch.flip(features, dims=[2])  # the same features, rows swapped
        for head, network in networks.items():
            moved = (network[-1](features) - network[-1](upside_down)).abs().max().item()
            assert (moved > 1e-4) == (head == "grid"), (head, moved)


def _fit_tiny(data: Path, out: Path, *flags: str) -> int:
    """``memegen train fit`` of a width-4 VGG for one epoch, unless ``flags`` say otherwise."""
    defaults = {"--epochs": "1", "--batch-size": "8", "--width": "4", "--threads": "1",
                "--holdout": "0.25"}
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        defaults[flag] = value
    return main(["train", "fit", "--data", str(data), "--out", str(out),
                 *[item for pair in defaults.items() for item in pair]])


def _contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_resuming_with_another_architecture_is_refused_before_anything_is_written(
    tmp_path: Path, capsys
):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    run = tmp_path / "run"
    assert _fit_tiny(data, run) == 0
    before = _contents(run)
    capsys.readouterr()
    assert _fit_tiny(data, run, "--width", "8", "--seed", "3", "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"memegen: {run} holds a run trained with other settings")
    assert "width 4 (saved) against 8 (asked)" in err and "seed 0 (saved) against 3" in err
    assert "epochs" not in err.split("only")[0]  # epochs may change; it is not listed
    assert _contents(run) == before  # config.json, checkpoints and holdout untouched


def test_resuming_with_more_epochs_and_other_threads_continues_the_run(tmp_path: Path):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    run = tmp_path / "run"
    assert _fit_tiny(data, run) == 0
    assert _fit_tiny(data, run, "--epochs", "2", "--threads", "2") == 0
    assert [json.loads(line)["epoch"] for line in (run / "log.jsonl").read_text().splitlines()] \
        == [1, 2]
    assert json.loads((run / "config.json").read_text())["epochs"] == 2


def test_resuming_with_fewer_epochs_than_done_is_refused_and_writes_nothing(
    tmp_path: Path, capsys
):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    run = tmp_path / "run"
    assert _fit_tiny(data, run, "--epochs", "2") == 0
    before = _contents(run)
    capsys.readouterr()
    assert _fit_tiny(data, run, "--epochs", "1") == 2
    assert capsys.readouterr().err == (
        f"memegen: {run} has trained 2 epochs already; --epochs must be at least 2 to "
        "resume it\n"
    )
    assert _contents(run) == before


def test_a_run_whose_average_has_begun_resumes_only_with_its_own_epochs(
    tmp_path: Path, capsys
):
    """More epochs would move the averaged stretch past the epochs already averaged."""
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    run = tmp_path / "run"
    assert _fit_tiny(data, run, "--epochs", "2", "--average-epochs", "2") == 0
    before = _contents(run)
    capsys.readouterr()
    assert _fit_tiny(data, run, "--epochs", "3", "--average-epochs", "2") == 2
    assert capsys.readouterr().err == (
        f"memegen: {run} averages its last 2 of 2 epochs and has trained 2: with 3 the "
        "averaged epochs would not all be averaged; --epochs must stay 2 to resume it\n"
    )
    assert _contents(run) == before


def test_fewer_epochs_that_would_start_the_average_before_the_resume_point_are_refused(
    tmp_path: Path
):
    """Stopped after 4 of 6 epochs (the last 2 averaged), 5 would make epoch 4 an averaged
    one that was trained under the one-cycle and never added."""
    train_set = _dataset([0, 3] * 8)
    with pytest.raises(_Stopped):
        train(TrainConfig(**TINY, epochs=6, average_epochs=2), train_set, train_set,
              tmp_path / "run", on_epoch=_stop_at(4))
    with pytest.raises(RunError, match="averages its last 2 of 6 epochs and has trained 4"):
        check_run_folder(TrainConfig(**TINY, epochs=5, average_epochs=2), tmp_path / "run")
    check_run_folder(TrainConfig(**TINY, epochs=7, average_epochs=2), tmp_path / "run")


def test_a_run_stopped_before_its_averaged_stretch_may_be_given_more_epochs(tmp_path: Path):
    labels = [0, 3] * 8
    train_set = _dataset(labels)
    config = TrainConfig(**TINY, epochs=3, average_epochs=1)
    with pytest.raises(_Stopped):
        train(config, train_set, train_set, tmp_path / "run", on_epoch=_stop_at(1))
    longer = TrainConfig(**TINY, epochs=5, average_epochs=1)
    train(longer, train_set, train_set, tmp_path / "run")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [line.get("averaged_epochs") for line in log] == [None, None, None, None, 1]


def test_a_resume_point_cut_short_is_refused_in_one_line(tmp_path: Path, capsys):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    run = tmp_path / "run"
    assert _fit_tiny(data, run) == 0
    last = run / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    capsys.readouterr()
    assert _fit_tiny(data, run, "--epochs", "2") == 2
    assert capsys.readouterr().err == (
        f"memegen: {last}: not a resume point that train wrote; it cannot be resumed\n"
    )


def test_resuming_with_another_holdout_is_refused_and_keeps_the_one_recorded(
    tmp_path: Path, capsys
):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    run = tmp_path / "run"
    assert _fit_tiny(data, run) == 0
    before = _contents(run)
    assert _fit_tiny(data, run, "--holdout", "0.5", "--epochs", "2") == 2
    assert f"{run} held out other faces" in capsys.readouterr().err
    assert _contents(run) == before


def test_init_from_another_architecture_is_refused_before_a_run_folder_is_made(
    tmp_path: Path, capsys
):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    assert _fit_tiny(data, tmp_path / "a") == 0
    checkpoint = tmp_path / "a" / "best.pt"
    capsys.readouterr()
    assert _fit_tiny(data, tmp_path / "b", "--init-from", str(checkpoint), "--width", "8") == 2
    assert capsys.readouterr().err == (
        f"memegen: {checkpoint} holds a network of another architecture (width 4 (saved) "
        "against 8 (asked)); a run starts from weights only of its own shape\n"
    )
    assert not (tmp_path / "b").exists()
    assert _fit_tiny(data, tmp_path / "c", "--init-from", str(checkpoint)) == 0


def test_init_from_a_file_that_is_no_checkpoint_is_refused(tmp_path: Path, capsys):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    not_a_checkpoint = tmp_path / "manifest.json"
    not_a_checkpoint.write_text("{}")
    assert _fit_tiny(data, tmp_path / "run", "--init-from", str(not_a_checkpoint)) == 2
    assert "not a checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_fit_holds_out_whole_subjects_and_ungrouped_faces_as_before(tmp_path: Path):
    from memegen.training.datasets import load_split, stratified_split

    from tiny_datasets import write_ckplus

    ckplus = write_ckplus(tmp_path / "ck", subjects=8, per_subject={"happy": 3, "sadness": 3})
    assert _fit_tiny(ckplus, tmp_path / "ck-run") == 0
    subjects = load_split(str(ckplus), "train").groups
    held = np.zeros(len(subjects), dtype=bool)
    held[np.load(tmp_path / "ck-run" / "holdout_indices.npy")] = True
    assert held.any() and not set(subjects[held]) & set(subjects[~held])

    # Without groups, the same seed holds out the same rows as before.
    faces = write_class_folders(tmp_path / "faces", {"train": 4})
    assert _fit_tiny(faces, tmp_path / "run", "--seed", "3") == 0
    labels = load_split(str(faces), "train").labels
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "holdout_indices.npy"),
                                  stratified_split(labels, 0.25, 3)[1])


def test_a_second_run_in_a_folder_being_trained_is_refused_until_the_first_ends(
    tmp_path: Path
):
    """Two at once interleaved their epochs in one log and kept whichever best.pt was
    saved last, or moved each other's partial checkpoint away mid-save."""
    train_set = _dataset([0, 3] * 8)
    config = TrainConfig(**TINY, epochs=2)
    run = tmp_path / "run"
    refusals = []

    def train_there_too(epoch: int, accuracy: float) -> None:
        with pytest.raises(RunError) as refused:
            train(config, train_set, train_set, run)
        refusals.append(str(refused.value))

    train(config, train_set, train_set, run, on_epoch=train_there_too)
    assert refusals == [f"{run}: another fit is writing this run folder now; wait until it "
                        "ends, or give another run folder"] * 2
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in log] == [1, 2]
    assert train(replace(config, epochs=3), train_set, train_set, run).epochs_run == 3


def test_a_run_whose_loss_is_not_finite_stops_and_keeps_its_last_good_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    train_set = _dataset([0, 3] * 8)  # one step an epoch
    real_loss = torch.nn.functional.cross_entropy
    steps = []

    def diverging_in_the_second_step(*args, **kwargs):
        steps.append(1)
        return real_loss(*args, **kwargs) * (float("nan") if len(steps) == 2 else 1.0)

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", diverging_in_the_second_step)
    run = tmp_path / "run"
    with pytest.raises(RunError, match=re.escape(
        f"{run}: the training loss became nan in epoch 2, so the run stopped (its "
        "checkpoints keep epoch 1); train it again with a lower --learning-rate"
    )):
        train(TrainConfig(**TINY, epochs=3), train_set, train_set, run)
    assert len((run / "log.jsonl").read_text().splitlines()) == 1
    last = torch.load(run / "last.pt", weights_only=False)
    assert last["state"]["epoch"] == 1
    assert all(torch.isfinite(value).all() for value in last["model"].values())


def test_fit_at_a_learning_rate_that_diverges_is_one_line_and_logs_no_nan(
    tmp_path: Path, capsys
):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    run = tmp_path / "run"
    assert _fit_tiny(data, run, "--learning-rate", "1e9", "--epochs", "3") == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"memegen: {run}: ") and "so the run stopped" in err[-1]
    log = run / "log.jsonl"
    assert not log.exists() or "NaN" not in log.read_text()


def _as_text(text: str):
    return lambda config: text


@pytest.mark.parametrize(("edit", "message"), [
    (_as_text("{not json"), "not the JSON settings train wrote"),
    (_as_text("[]"), "the settings are a JSON list, not an object"),
    (lambda config: json.dumps({**config, "colour": "blue"}), "unknown setting 'colour'"),
    (lambda config: json.dumps({**config, "augment": {**config["augment"], "tilt": 1}}),
     "unknown setting 'augment.tilt'"),
    (lambda config: json.dumps({**config, "epochs": "1"}), "epochs '1' is not of type int"),
    (lambda config: json.dumps({**config, "epochs": -1}), "epochs must be at least 1, not -1"),
], ids=["not-json", "a-list", "unknown", "unknown-augment", "string-epochs", "no-epochs"])
def test_a_config_json_that_holds_no_settings_is_one_line_naming_it(
    tmp_path: Path, capsys, edit, message: str
):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    run = tmp_path / "run"
    assert _fit_tiny(data, run) == 0
    config_path = run / "config.json"
    config_path.write_text(edit(json.loads(config_path.read_text())))
    before = _contents(run)
    capsys.readouterr()
    assert _fit_tiny(data, run, "--epochs", "2") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"memegen: {config_path}: ") and message in err
    assert err.endswith("the run cannot be resumed\n") and err.count("\n") == 1
    assert _contents(run) == before


def test_a_config_json_edited_to_another_architecture_than_last_pt_is_refused(
    tmp_path: Path, capsys
):
    data = write_class_folders(tmp_path / "faces", {"train": 4})
    run = tmp_path / "run"
    assert _fit_tiny(data, run) == 0
    config_path = run / "config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "width": 8}))
    capsys.readouterr()
    assert _fit_tiny(data, run, "--width", "8", "--epochs", "2") == 2
    assert capsys.readouterr().err == (
        f"memegen: {run / 'last.pt'}: its weights are not those of the network {config_path} "
        "describes (was the file edited?); the run cannot be resumed\n"
    )


def test_a_distilled_run_resumes_with_its_teacher_however_its_path_is_typed_and_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    pytest.importorskip("onnx")
    from tiny_networks import write_float_ensemble

    data = write_class_folders(tmp_path / "faces", {"train": 4})
    teacher = write_float_ensemble(tmp_path / "here" / "teacher")
    write_float_ensemble(tmp_path / "there" / "teacher", weights=(0.5, 1.5))
    run = tmp_path / "run"
    monkeypatch.chdir(tmp_path / "here")
    assert _fit_tiny(data, run, "--teacher", "teacher/manifest.json") == 0
    assert json.loads((run / "config.json").read_text())["teacher"] == str(teacher.resolve())
    assert _fit_tiny(data, run, "--teacher", str(teacher), "--epochs", "2") == 0

    monkeypatch.chdir(tmp_path / "there")  # the same words name another teacher here
    capsys.readouterr()
    assert _fit_tiny(data, run, "--teacher", "teacher/manifest.json", "--epochs", "3") == 2
    assert "teacher" in capsys.readouterr().err

    manifest = json.loads(teacher.read_text())  # the teacher itself, edited in place
    manifest["models"][0]["class_weights"]["happy"] = 3.0
    teacher.write_text(json.dumps(manifest))
    assert _fit_tiny(data, run, "--teacher", str(teacher), "--epochs", "3") == 2
    err = capsys.readouterr().err
    assert "teacher_digest" in err and "teacher '" not in err
