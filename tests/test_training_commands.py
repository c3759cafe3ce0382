"""``memegen train ...`` tells a user's mistake from a bug: a mistake (a ``UserError``) is one
line and status 2, any other exception, a ``ValueError`` included, keeps its traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from memegen import LABELS  # noqa: E402
from memegen.cli import main  # noqa: E402

from tiny_datasets import write_class_folders  # noqa: E402
from tiny_networks import write_float_ensemble  # noqa: E402


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """What the commands' arguments name: paths that exist, tiny faces in a train and a
    val split, and a folder for what they would write."""
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "run").mkdir()
    return {
        "manifest": tmp_path / "manifest.json",
        "run": tmp_path / "run",
        "data": write_class_folders(tmp_path / "faces", {"train": 4, "val": 1}),
        "out": tmp_path / "out",
        "database": tmp_path / "search.db",
    }


# Per command: a step it runs, made to fail with a bug, and its arguments. For fit and search
# it is the check of their settings, which refuses a user's mistake with a UserError.
STEPS = {
    "fit": ("memegen.training.train.TrainConfig",
            ["fit", "--data", "{data}", "--out", "{out}"]),
    "fit --focus": ("memegen.training.focus.consulted_by_gate",
                    ["fit", "--data", "{data}", "--out", "{out}", "--holdout", "0.25",
                     "--focus", "{manifest}"]),
    "search": ("memegen.training.search.SearchSettings",
               ["search", "--data", "{data}", "--storage", "sqlite:///{database}"]),
    "photo-models": ("memegen.training.photo_models.add_photo_models",
                     ["photo-models", "{manifest}", "{run}", "--photos", "{data}"]),
    "mirror": ("memegen.training.mirror.fit_mirror_passes",
               ["mirror", "{manifest}", "--val-data", "{data}", "--out", "{out}"]),
    "gate": ("memegen.training.gate.fit_gate",
             ["gate", "{manifest}", "--val-data", "{data}", "--out", "{out}"]),
    "rebuild": ("memegen.training.rebuild.rebuild_run",
                ["rebuild", "{manifest}", "net0", "--data", "{data}", "--out", "{out}"]),
}


def _error_line(stderr: str) -> str:
    """The one line that reports the mistake: the last, after any progress lines, and the
    only one that starts with 'memegen:'."""
    reports = [line for line in stderr.splitlines() if line.startswith("memegen:")]
    assert reports == stderr.splitlines()[-1:], stderr
    return reports[0]


def _argv(template: list[str], files: dict[str, Path]) -> list[str]:
    return ["train", *(part.format(**files) for part in template)]


@pytest.mark.parametrize(("module", "argv"), [
    ("torch", ["export", "{run}", "--out", "{out}"]),
    ("optuna", ["search", "--data", "{data}", "--storage", "sqlite:///{database}"]),
])
def test_a_step_without_the_training_extra_says_which_extra_to_install(
    files: dict[str, Path], module: str, argv: list[str]
):
    """Installed without ``[train]``, the steps died with a traceback on the import."""
    program = (f"import sys; sys.modules[{module!r}] = None\n"  # as if not installed
               "from memegen.cli import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", program, *_argv(argv, files)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == (
        f"memegen: train {argv[0]} needs the training extra, and {module} is not installed: "
        "pip install 'memegen[train]'\n"
    )
    assert not files["out"].exists()


@pytest.mark.parametrize("command", STEPS)
def test_a_value_error_that_is_no_user_mistake_keeps_its_traceback(
    command: str, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys
):
    step, template = STEPS[command]

    def bug(*args, **kwargs):
        raise ValueError("operands could not be broadcast together")

    monkeypatch.setattr(step, bug)
    with pytest.raises(ValueError, match="could not be broadcast"):
        main(_argv(template, files))
    assert "memegen:" not in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["mirror", "{manifest}", "--val-data", "{data}", "--out", "{out}"],
    ["gate", "{manifest}", "--val-data", "{data}", "--out", "{out}"],
    ["quantize", "{manifest}", "--calibration-data", "{data}", "--out", "{out}"],
    ["rebuild", "{manifest}", "net0", "--data", "{data}", "--out", "{out}"],
    ["photo-models", "{manifest}", "{run}", "--photos", "expw:{run}"],
], ids=lambda command: command[0])
def test_a_manifest_that_is_not_json_is_one_line_naming_it(
    command: list[str], files: dict[str, Path], capsys
):
    files["manifest"].write_text("not JSON")
    assert main(_argv(command, files)) == 2
    error = _error_line(capsys.readouterr().err)
    assert error.startswith(f"memegen: {files['manifest']}: the model manifest is not valid JSON")
    assert not files["out"].exists()


def test_photo_models_refuse_photos_that_are_not_expw_style(files: dict[str, Path], capsys):
    assert main(_argv(["photo-models", "{manifest}", "{run}", "--photos", "folders:{data}"],
                      files)) == 2
    assert _error_line(capsys.readouterr().err) == (
        f"memegen: 'folders:{files['data']}': photo models need ExpW-style labelled photos"
    )


@pytest.fixture(scope="module")
def float_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_float_ensemble(tmp_path_factory.mktemp("float"))


def _edited_copy(source: Path, folder: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of the ensemble in ``folder``, its manifest changed by ``edit``."""
    shutil.copytree(source.parent, folder)
    manifest = json.loads(source.read_text())
    edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder / "manifest.json"


def _resnet_first(manifest: dict) -> None:
    manifest["models"][0]["architecture"]["family"] = "resnet"


def _no_mirror_pass(manifest: dict) -> None:
    for entry in manifest["models"]:
        entry["input"]["mirror_averaged_in_graph"] = False


def _one_model(manifest: dict) -> None:
    del manifest["models"][1:]


def _no_mirror_field(manifest: dict) -> None:
    del manifest["models"][0]["input"]["mirror_averaged_in_graph"]


def _no_metrics(manifest: dict) -> None:
    del manifest["models"][1]["metrics"]


def _quantized(manifest: dict) -> None:
    manifest["models"][0]["quantization"] = {"from": "net0-float.onnx"}


@pytest.mark.parametrize(("edit", "command", "message"), [
    (_resnet_first, ["rebuild", "{manifest}", "net0", "--data", "{data}", "--out", "{out}"],
     "only the vgg family is rebuilt: its layers map one to one"),
    (_no_mirror_pass, ["mirror", "{manifest}", "--val-data", "{data}", "--out", "{out}"],
     "net0: its graph has no mirror pass"),
    (_one_model, ["gate", "{manifest}", "--val-data", "{data}", "--out", "{out}"],
     "{manifest}: a gate needs at least two models"),
    (_no_mirror_field, ["mirror", "{manifest}", "--val-data", "{data}", "--out", "{out}"],
     "net0: its entry lacks input.mirror_averaged_in_graph, so whether its graph has a "
     "mirror pass is not known"),
    (_no_metrics, ["mirror", "{manifest}", "--val-data", "{data}", "--out", "{out}"],
     "net1: its entry lacks metrics (an object, as train export writes it), where the "
     "weighting set's numbers go"),
    (_quantized, ["quantize", "{manifest}", "--calibration-data", "{data}", "--out", "{out}"],
     "{manifest}: net0 is int8 already (its entry records a quantization); quantize the "
     "float ensemble it came from instead"),
], ids=["rebuild-resnet", "mirror-without-mirror-pass", "gate-one-model",
        "mirror-without-mirror-field", "mirror-without-metrics", "quantize-int8"])
def test_an_ensemble_the_step_cannot_use_is_one_line_and_writes_nothing(
    float_ensemble: Path, files: dict[str, Path], capsys,
    edit: Callable[[dict], None], command: list[str], message: str,
):
    files["manifest"] = _edited_copy(float_ensemble, files["manifest"].parent / "edited", edit)
    assert main(_argv(command, files)) == 2
    assert _error_line(capsys.readouterr().err) == f"memegen: {message.format(**files)}"
    assert not files["out"].exists()


@pytest.mark.parametrize("command", [
    ["export", "{run}", "--out", "{out}/ensembles/new"],
    ["ensemble", "{run}", "--val-data", "{data}", "--out", "{out}/ensembles/new"],
], ids=["export", "ensemble"])
def test_a_step_that_fails_removes_the_out_folder_it_made_and_only_that(
    files: dict[str, Path], capsys, command: list[str]
):
    """Not the parents made with it: a step beside it may be writing there."""
    assert main(_argv(command, files)) == 2  # the run folder holds no best.pt
    assert "best.pt" in capsys.readouterr().err
    assert not (files["out"] / "ensembles" / "new").exists()
    assert (files["out"] / "ensembles").is_dir()


def test_a_step_that_fails_keeps_an_out_folder_that_was_there(files: dict[str, Path]):
    files["out"].mkdir()
    (files["out"] / "notes.txt").write_text("mine")
    assert main(_argv(["export", "{run}", "--out", "{out}"], files)) == 2
    assert (files["out"] / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("rows", "message"), [
    (None, "not a .npy file of row numbers, so not an indices file (train fit writes one "
     "as holdout_indices.npy)"),
    (np.array([0, "a"], dtype=object), "not a .npy file of row numbers: it holds Python "
     "objects"),
    (np.array([0.5, 1.5]), "expected a list of whole row numbers"),
    (np.array([0, 99]), "row numbers must be from 0 to"),
    (np.array([], dtype=np.int64), "lists no rows, so there are no faces to fit on"),
], ids=["text", "pickled", "fractions", "out-of-range", "empty"])
@pytest.mark.parametrize("command", ["mirror", "gate", "ensemble"])
def test_indices_that_are_not_row_numbers_of_the_data_are_one_line_naming_the_file(
    float_ensemble: Path, files: dict[str, Path], capsys, command: str, rows, message: str,
):
    indices = files["out"].parent / "rows.npy"
    if rows is None:
        indices.write_text("0\n1\n")
    else:
        np.save(indices, rows, allow_pickle=True)
    source = str(files["run"]) if command == "ensemble" else str(float_ensemble)
    argv = [command, source, "--val-data", "{data}", "--indices", str(indices),
            "--out", "{out}"]
    assert main(_argv(argv, files)) == 2
    error = _error_line(capsys.readouterr().err)
    assert error.startswith(f"memegen: --indices {indices}: {message}")
    assert "pickled" not in error
    assert not files["out"].exists()


@pytest.mark.parametrize("command", ["mirror", "gate"])
def test_indices_are_checked_against_the_faces_their_run_recorded(
    float_ensemble: Path, files: dict[str, Path], capsys, command: str
):
    """Rows of another dataset than the run was fitted on would weigh it on faces it trained on."""
    from memegen.training.datasets import image_digests, load_split

    train = load_split(str(files["data"]), "train")
    rows = np.arange(0, len(train), 4)  # one face of every class
    run = files["out"].parent / "fitted"
    run.mkdir()
    np.save(run / "holdout_indices.npy", rows)
    argv = [command, str(float_ensemble), "--val-data", "{data}",
            "--indices", str(run / "holdout_indices.npy"), "--out", "{out}"]

    one_other = np.r_[rows[:-1], rows[-1] + 1]
    np.save(run / "holdout_digests.npy", image_digests(train.images[one_other]))
    assert main(_argv(argv, files)) == 2
    assert _error_line(capsys.readouterr().err) == (
        f"memegen: --indices {run / 'holdout_indices.npy'}: 1 of these 7 rows of {files['data']} "
        "are not the faces its run held out (holdout_digests.npy beside it says which); give "
        "the --val-data that run was fitted on"
    )
    assert not files["out"].exists()

    np.save(run / "holdout_digests.npy", image_digests(train.images[rows]))
    assert main(_argv(argv, files)) == 0
    assert (files["out"] / "manifest.json").is_file()


@pytest.mark.parametrize(("argv", "message"), [
    (["quantize", "{manifest}", "--calibration-data", "{data}", "--out", "{out}", "--count", "0"],
     "--count: '0': must be at least 1"),
    (["search", "--data", "{data}", "--trials", "-1"], "--trials: '-1': must be at least 1"),
    (["export", "{run}", "--out", "{out}", "--crop-margin", "-3"],
     "--crop-margin: '-3': must be from 0.0 to 1.0"),
    (["photo-models", "{manifest}", "{run}", "--photos", "{data}", "--iou", "0"],
     "--iou: '0': must be above 0.0, at most 1.0"),
    (["report", "--manifest", "{manifest}", "--out", "{out}", "--photos-limit", "-3"],
     "--photos-limit: '-3': must be at least 1"),
    (["gate", "{manifest}", "--val-data", "{data}", "--out", "{out}",
      "--max-consulted-share", "-1"], "--max-consulted-share: '-1': must be from 0.0 to 1.0"),
    (["gate", "{manifest}", "--val-data", "{data}", "--out", "{out}",
      "--max-consulted-share", "nan"], "--max-consulted-share: 'nan': must be from 0.0 to 1.0"),
    (["fit", "--data", "{data}", "--out", "{out}", "--teacher", "{manifest}",
      "--teacher-share", "1.5"], "--teacher-share: '1.5': must be from 0.0 to 1.0"),
])
def test_a_number_out_of_its_range_is_refused_while_parsing(
    files: dict[str, Path], argv: list[str], message: str, capsys
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(_argv(argv, files))
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
    assert not files["out"].exists()


def test_an_out_that_is_a_file_is_one_line_naming_it(files: dict[str, Path], capsys) -> None:
    files["out"].write_text("not a folder")
    status = main(_argv(["export", "{run}", "--out", "{out}"], files))
    assert status == 2
    assert _error_line(capsys.readouterr().err) == f"memegen: {files['out']}: File exists"


@pytest.mark.parametrize("command", [
    ["quantize", "{manifest}", "--calibration-data", "{data}", "--out", "{out}"],
    ["mirror", "{manifest}", "--val-data", "{data}", "--out", "{out}"],
])
def test_a_manifest_that_lists_no_models_is_one_line_and_writes_nothing(
    files: dict[str, Path], command: list[str], capsys
) -> None:
    files["manifest"].write_text(json.dumps({"labels": list(LABELS), "models": []}))
    assert main(_argv(command, files)) == 2
    assert _error_line(capsys.readouterr().err) == f"memegen: {files['manifest']}: lists no models"
    assert not files["out"].exists()


def _break_on_call(monkeypatch: pytest.MonkeyPatch, target: str, failing_call: int) -> None:
    """Make ``target`` (a step's function that writes a file) fail as a full disk does on
    its ``failing_call``-th call, after the step wrote some of its files."""
    module, name = target.rsplit(".", 1)
    written = getattr(__import__(module, fromlist=[name]), name)
    calls = []

    def fail_once_called_enough(*args, **kwargs):
        calls.append(args)
        if len(calls) == failing_call:
            raise OSError(28, "No space left on device")
        return written(*args, **kwargs)

    monkeypatch.setattr(target, fail_once_called_enough)


@pytest.mark.parametrize(("command", "breaks", "failing_call"), [
    (["mirror", "{manifest}", "--val-data", "{data}", "--out", "{out}"],
     "memegen.training.mirror.save_manifest", 1),
    (["gate", "{manifest}", "--val-data", "{data}", "--out", "{out}"],
     "memegen.training.gate.save_refitting_class_bias", 1),
    (["quantize", "{manifest}", "--calibration-data", "{data}", "--count", "7",
      "--out", "{out}"],
     "memegen.training.quantize.quantize_model", 2),
], ids=["mirror", "gate", "quantize"])
def test_a_step_that_fails_part_way_leaves_the_ensemble_in_its_out_folder_as_it_was(
    float_ensemble: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
    command: list[str], breaks: str, failing_call: int,
):
    """README's training steps write into the shipped model folder: a step that stopped
    after writing some files left a manifest naming models it had replaced, or none."""
    files["manifest"] = float_ensemble
    shutil.copytree(float_ensemble.parent, files["out"])
    for name in ("net0.onnx", "net1.onnx", "net0-plain.onnx", "net0-int8.onnx"):
        (files["out"] / name).write_bytes(b"an older model")
    before = {path.name: path.read_bytes() for path in files["out"].iterdir()}
    _break_on_call(monkeypatch, breaks, failing_call)
    with pytest.raises(OSError, match="No space left"):
        main(_argv(command, files))
    assert {path.name: path.read_bytes() for path in files["out"].iterdir()} == before
    assert sorted(path.name for path in files["out"].parent.iterdir()) == [
        "faces", "manifest.json", "out", "run"]
