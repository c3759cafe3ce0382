"""Dataset specs, the readers behind them and ``memegen train summary`` on tiny datasets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memegen import LABELS
from memegen.cli import main
from memegen.facecrop import crop_face
from memegen.training import commands
from memegen.training.balance import STRATEGIES
from memegen.training.datasets import (
    KINDS,
    DatasetError,
    DatasetSpec,
    image_digests,
    load_split,
    load_splits,
    split_by_digests,
    split_loaders,
)

from tiny_datasets import (
    ASTRONAUT_FACE,
    faces_of_every_class,
    write_ckplus,
    write_class_folders,
    write_expw,
    write_ferplus,
)

# Per image, FER+ votes: neutral … NF (see tiny_datasets.FERPLUS_HEADER).
VOTES = [
    [4, 0, 0, 1, 3, 2, 0, 0, 0, 0],  # neutral, clearly
    [0, 0, 0, 0, 0, 0, 0, 5, 5, 0],  # contempt and unknown only: none of ours
    None,  # not in FER+ at all
    [2, 2, 0, 0, 0, 0, 0, 0, 0, 0],  # neutral and happy tie
]


def _row(output: str, after: str, split: str) -> list[int]:
    block = output.split(after, 1)[1]
    line = next(line for line in block.splitlines() if line.startswith(split))
    return [int(value) for value in line.split()[1:]]


def test_summary_counts_every_class_and_split_of_each_reader(tmp_path: Path, capsys):
    faces = write_class_folders(tmp_path / "faces", {"train": 3, "val": 1})
    ckplus = write_ckplus(tmp_path / "ck", subjects=5, per_subject={"anger": 1, "contempt": 1})
    fer, votes = write_ferplus(tmp_path / "fer", VOTES)
    expw = write_expw(tmp_path / "expw")
    assert main([
        "train", "summary", "--data", str(faces), str(ckplus),
        f"ferplus:{fer},votes={votes}", f"ferplus-soft:{fer},votes={votes}", str(expw),
    ]) == 0
    output = capsys.readouterr().out
    assert _row(output, "(folders)", "train") == [3] * 7 + [21]
    assert _row(output, "(folders)", "val") == [1] * 7 + [7]
    ck_train, ck_val = _row(output, "(ckplus)", "train"), _row(output, "(ckplus)", "val")
    assert ck_train[0] + ck_val[0] == 5 and ck_train[-1] + ck_val[-1] == 5  # contempt dropped
    assert _row(output, "(ferplus)", "train") == [0, 0, 0, 0, 0, 0, 1, 1]
    assert _row(output, "(ferplus-soft)", "train") == [0, 0, 0, 1, 0, 0, 1, 2]
    assert _row(output, "(expw)", "all") == [0, 0, 0, 1, 0, 0, 0, 1]


def _write_fer2013_csv(path: Path, per_usage: dict[str, int]) -> Path:
    """``fer2013.csv`` with ``per_usage[USAGE]`` faces of each usage, classes in turn."""
    rows = []
    for usage, count in per_usage.items():
        for number, image in enumerate(faces_of_every_class(count, seed=len(rows))):
            pixels = " ".join(map(str, image.ravel()))
            rows.append(f"{number % len(LABELS)},{pixels},{usage}")
    path.write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    return path


def test_class_folders_are_matched_in_any_case_and_others_are_named_when_skipped(
    tmp_path: Path, capsys
):
    root = write_class_folders(tmp_path / "faces", {"train": 2})
    (root / "train" / "angry").rename(root / "train" / "Angry")
    (root / "train" / "contempt").mkdir()
    train = load_split(f"folders:{root}", "train")
    assert train.class_counts() == dict.fromkeys(LABELS, 2)
    assert capsys.readouterr().err == (
        f"memegen: {root / 'train'}: skipped folders that name no expression "
        f"({', '.join(LABELS)}): contempt\n"
    )


def test_split_folders_are_matched_in_any_case_unless_two_differ_only_in_case(tmp_path: Path):
    root = write_class_folders(tmp_path / "faces", {"Train": 2, "VAL": 1})
    assert len(load_split(f"folders:{root}", "train")) == 2 * len(LABELS)
    assert len(load_split(f"folders:{root},split=val", "train")) == len(LABELS)
    if (root / "train").exists():
        pytest.skip("this file system does not tell Train/ from train/")
    write_class_folders(root, {"train": 3})
    assert len(load_split(f"folders:{root}", "train")) == 3 * len(LABELS)
    with pytest.raises(DatasetError, match="no split 'TRAIN'; it has Train, VAL, train"):
        load_split(f"folders:{root},split=TRAIN", "train")


def test_two_folders_for_one_class_are_refused(tmp_path: Path):
    root = write_class_folders(tmp_path / "faces", {"train": 1})
    (root / "train" / "HAPPY").mkdir()
    with pytest.raises(DatasetError, match="both HAPPY/ and happy/ hold happy faces"):
        load_split(f"folders:{root}", "train")


def test_fer2013_csv_splits_are_named_as_in_the_class_folder_tree(tmp_path: Path, capsys):
    csv_path = _write_fer2013_csv(
        tmp_path / "fer2013.csv", {"Training": 14, "PublicTest": 7, "PrivateTest": 7}
    )
    assert list(split_loaders(DatasetSpec.parse(str(csv_path)))) == ["test", "train", "val"]
    trained_on = load_split(str(csv_path), "train")  # what fit, search and quantize read
    assert (trained_on.name, len(trained_on)) == ("fer2013/train", 14)
    assert load_split(str(csv_path), "val").name == "fer2013/val"  # ensemble, bias, mirror
    # The CSV's own names still pick a split.
    assert load_split(f"{csv_path},split=PrivateTest", "train").name == "fer2013/test"
    assert main(["train", "summary", "--data", str(csv_path)]) == 0
    assert _row(capsys.readouterr().out, "(fer2013-csv)", "val") == [1] * 7 + [7]


def test_report_on_fer2013_csv_measures_every_split_but_train(tmp_path: Path):
    pytest.importorskip("torch")
    from tiny_networks import write_float_ensemble

    manifest = write_float_ensemble(tmp_path / "models")
    csv_path = _write_fer2013_csv(
        tmp_path / "fer2013.csv", {"Training": 7, "PublicTest": 7, "PrivateTest": 7}
    )
    assert main(["train", "report", "--manifest", str(manifest), "--data", str(csv_path),
                 "--out", str(tmp_path / "report")]) == 0
    measured = json.loads((tmp_path / "report" / "report.json").read_text())["datasets"]
    assert sorted(measured) == ["fer2013/test", "fer2013/val"]


def test_report_on_class_folders_leaves_out_a_train_split_in_any_case(tmp_path: Path):
    pytest.importorskip("torch")
    from tiny_networks import write_float_ensemble

    manifest = write_float_ensemble(tmp_path / "models")
    root = write_class_folders(tmp_path / "faces", {"Train": 1, "Val": 1})
    assert main(["train", "report", "--manifest", str(manifest), "--data", f"folders:{root}",
                 "--out", str(tmp_path / "report")]) == 0
    measured = json.loads((tmp_path / "report" / "report.json").read_text())["datasets"]
    assert sorted(measured) == ["faces/Val"]


def test_ferplus_soft_labels_are_the_vote_share_found_through_fer2013_row(tmp_path: Path):
    fer, votes = write_ferplus(tmp_path / "fer", VOTES)
    dataset = load_split(f"ferplus-soft:{fer},votes={votes}", "train")
    neutral, happy = LABELS.index("neutral"), LABELS.index("happy")
    np.testing.assert_allclose(dataset.soft_labels[0][[0, 1, 4, neutral]], [0.3, 0.2, 0.1, 0.4])
    assert dataset.labels.tolist() == [neutral, happy]  # a tie takes FER2013's label, happy


def test_blend_keeps_fer2013_labels_and_mixes_in_the_votes_where_there_are_any(tmp_path: Path):
    fer, votes = write_ferplus(tmp_path / "fer", VOTES)
    dataset = load_split(f"ferplus-soft:{fer},votes={votes},blend=0.5", "train")
    happy = LABELS.index("happy")
    assert dataset.labels.tolist() == [happy] * 4  # every face, FER2013's folder label
    expected = np.zeros((4, len(LABELS)))
    expected[:, happy] = 1.0
    # angry, disgust, sad, neutral: votes 3, 2, 1, 4 of 10, then half of that.
    expected[0] = [0.15, 0.1, 0.0, 0.5, 0.05, 0.0, 0.2]
    expected[3, [happy, LABELS.index("neutral")]] = [0.75, 0.25]  # a 2-2 tie, halved
    np.testing.assert_allclose(dataset.soft_labels, expected, atol=1e-6)


def test_blend_is_refused_outside_zero_to_one_and_for_majority_labels(tmp_path: Path):
    fer, votes = write_ferplus(tmp_path / "fer", VOTES)
    with pytest.raises(ValueError, match="between 0 and 1"):
        load_split(f"ferplus-soft:{fer},votes={votes},blend=1.5", "train")
    with pytest.raises(ValueError, match="ferplus-soft only"):
        DatasetSpec.parse(f"ferplus:{fer},votes={votes},blend=0.5")


def test_a_holdout_is_found_again_by_pixels_in_a_reordered_relabelled_dataset():
    images = np.random.default_rng(0).integers(0, 256, (6, 48, 48), dtype=np.uint8)
    images[5] = images[1]  # FER2013 holds a few identical copies; both count as held out
    held_out_digests = image_digests(images[[1, 3]])
    order = np.array([4, 3, 5, 0, 1, 2])  # another dataset's row order, e.g. FER+'s
    kept, held_out = split_by_digests(images[order], held_out_digests)
    assert order[held_out].tolist() == [3, 5, 1]
    assert sorted(order[kept].tolist()) == [0, 2, 4]


def test_ckplus_subjects_never_straddle_train_and_val(tmp_path: Path):
    ckplus = write_ckplus(tmp_path / "ck", subjects=6, per_subject={"happy": 2, "sadness": 1})
    splits = load_splits(DatasetSpec.parse(str(ckplus)))
    assert not set(splits["train"].groups) & set(splits["val"].groups)
    assert len(splits["train"]) + len(splits["val"]) == 18


def test_expw_faces_are_cut_with_the_inference_crop(tmp_path: Path):
    expw = write_expw(tmp_path / "expw")
    dataset = load_split(f"{expw},margin=0.2", "all")
    with Image.open(expw / "images" / "astronaut.jpg") as photo:
        expected = crop_face(np.asarray(photo.convert("L")), ASTRONAUT_FACE, 48, 0.2)
    np.testing.assert_array_equal(dataset.images[0], expected)


def test_expw_photo_lists_keep_or_leave_out_whole_photos(tmp_path: Path):
    expw = write_expw(tmp_path / "expw", ("happy", "sad", "fear"))
    listed = tmp_path / "fit_photos.txt"
    listed.write_text("images/astronaut-1.jpg\n\nimages/astronaut-2.jpg\n")
    kept = load_split(f"{expw},photos={listed}", "all")
    assert [LABELS[label] for label in kept.labels] == ["sad", "fear"]
    skipped = load_split(f"{expw},skip={listed}", "all")
    assert [LABELS[label] for label in skipped.labels] == ["happy"]
    with pytest.raises(ValueError, match=r"ckplus takes no photos= \(expw only\)"):
        DatasetSpec.parse(f"ckplus:{expw},photos={listed}")


def test_spec_guesses_the_reader_and_rejects_what_it_cannot_use(tmp_path: Path):
    faces = write_class_folders(tmp_path / "faces", {"val": 1})
    assert DatasetSpec.parse(f"{faces},split=val").kind == "folders"
    assert DatasetSpec.parse(f"ckplus:{faces}").kind == "ckplus"
    with pytest.raises(ValueError, match="unknown option"):
        DatasetSpec.parse(f"{faces},colour=blue")
    with pytest.raises(ValueError, match="needs votes"):
        DatasetSpec.parse(f"ferplus:{faces}")
    with pytest.raises(ValueError, match="no split 'test'"):
        load_splits(DatasetSpec.parse(f"{faces},split=test"))
    assert len(load_split(str(faces), "train")) == 7  # its only split stands in for train


def test_spec_with_an_unknown_kind_is_refused_naming_the_kinds(tmp_path: Path):
    with pytest.raises(DatasetError) as refused:
        DatasetSpec.parse(f"bogus:{tmp_path}")
    assert "unknown dataset kind 'bogus'" in str(refused.value)
    assert all(kind in str(refused.value) for kind in KINDS)
    odd = write_class_folders(tmp_path / "odd:name", {"train": 1})
    assert DatasetSpec.parse(str(odd)).path == odd  # a folder whose name has a colon is a path


def test_spec_options_that_take_numbers_are_checked_when_parsed(tmp_path: Path):
    ckplus = write_ckplus(tmp_path / "ck", subjects=2, per_subject={"happy": 1})
    with pytest.raises(DatasetError, match="holdout= takes a number, not 'half'"):
        DatasetSpec.parse(f"{ckplus},holdout=half")
    with pytest.raises(DatasetError, match="seed= takes a number"):
        DatasetSpec.parse(f"{ckplus},seed=1.5")


@pytest.mark.parametrize(("spec", "message"), [
    ("{faces},foo=1", "unknown option 'foo=1'"),
    ("ferplus:{faces}", "ferplus needs votes="),
    ("bogus:{faces}", "unknown dataset kind 'bogus'"),
    ("ckplus:{faces},holdout=1.5", "holdout= must be above 0 and below 1"),
    ("ckplus:{faces},holdout=0", "holdout= must be above 0 and below 1"),
    ("{faces}/missing", "{faces}/missing: no such file or folder"),
    ("ferplus:{faces},votes={faces}/missing.csv", "{faces}/missing.csv: no such file or folder"),
    ("ferplus:{faces},votes={faces}/train", "{faces}/manifest.csv: No such file or directory"),
])
def test_command_line_refuses_a_bad_dataset_in_one_line(
    tmp_path: Path, capsys, spec: str, message: str
):
    faces = write_class_folders(tmp_path / "faces", {"train": 1})
    assert main(["train", "summary", "--data", spec.format(faces=faces)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("memegen: ") and err.count("\n") == 1
    assert message.format(faces=faces) in err


def test_input_paths_are_refused_while_the_arguments_are_parsed(tmp_path: Path, capsys):
    faces = write_class_folders(tmp_path / "faces", {"val": 1})
    missing = tmp_path / "missing" / "manifest.json"
    with pytest.raises(SystemExit) as stopped:
        main(["train", "bias", str(missing), "--val-data", str(faces)])
    assert stopped.value.code == 2
    assert f"argument manifest: {missing}: no such file or folder" in capsys.readouterr().err


def test_command_line_offers_every_reader_and_balancing():
    assert commands.DATASET_KINDS == KINDS
    assert commands.BALANCE_CHOICES == STRATEGIES


def _fer2013_csv_with(path: Path, bad_row: str, header: str = "emotion,pixels,Usage") -> str:
    good = " ".join(["128"] * 48 * 48)
    path.write_text(f"{header}\n3,{good},Training\n{bad_row}\n")
    return str(path)


def _ckplus_with_label(root: Path, label: str) -> str:
    write_ckplus(root, subjects=2, per_subject={"happy": 1})
    manifest = root / "manifest.csv"
    lines = manifest.read_text().splitlines()
    lines[2] = lines[2].replace(",happy,", f",{label},")
    manifest.write_text("\n".join(lines) + "\n")
    return f"ckplus:{root}"


def _expw_with_corner(root: Path, corner: str) -> str:
    write_expw(root)
    faces = root / "faces.csv"
    header, row = faces.read_text().splitlines()
    faces.write_text(f"{header}\n{row.split(',', 1)[0]},{corner},{row.split(',', 2)[2]}\n")
    return f"expw:{root}"


def _ferplus_with_vote(root: Path, votes_row: int, value: str) -> str:
    """Tiny FER+ data whose votes file has ``value`` for happiness in data row ``votes_row``."""
    fer, votes = write_ferplus(root, VOTES)
    lines = votes.read_text().splitlines()
    fields = lines[1 + votes_row].split(",")
    fields[3] = value
    lines[1 + votes_row] = ",".join(fields)
    votes.write_text("\n".join(lines) + "\n")
    return f"ferplus:{fer},votes={votes}"


def _cut_short(spec: str, csv_path: Path, fields: int) -> str:
    """``spec``, its CSV's first data row cut down to its first ``fields`` fields."""
    lines = csv_path.read_text().splitlines()
    lines[1] = ",".join(lines[1].split(",")[:fields])
    csv_path.write_text("\n".join(lines) + "\n")
    return spec


def _not_utf8(spec: str, csv_path: Path) -> str:
    csv_path.write_bytes(csv_path.read_bytes().replace(b"\n", b"\n\xff", 1))
    return spec


def _folders_with_a_broken_png(root: Path) -> str:
    write_class_folders(root, {"train": 1})
    (root / "train" / "sad" / "000.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    return str(root)


def assert_summary_refused_in_one_line(spec: str, capsys, message: str) -> None:
    assert main(["train", "summary", "--data", spec]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("memegen: ") and err.count("\n") == 1, err
    assert message in err


@pytest.mark.parametrize(("write", "message"), [
    (lambda tmp: _fer2013_csv_with(tmp / "fer.csv", "0,1 2 3,Training"),
     "fer.csv:3: pixels must be 2304 values from 0 to 255"),
    (lambda tmp: _fer2013_csv_with(tmp / "fer.csv", "0," + " ".join(["300"] * 2304) + ",Training"),
     "fer.csv:3: pixels must be 2304 values from 0 to 255"),
    (lambda tmp: _fer2013_csv_with(tmp / "fer.csv", "9," + " ".join(["1"] * 2304) + ",Training"),
     "fer.csv:3: emotion 9 is not from 0 to 6"),
    (lambda tmp: _fer2013_csv_with(tmp / "fer.csv", "happy,1 2,Training"),
     "fer.csv:3: emotion and pixels must be whole numbers"),
    (lambda tmp: _fer2013_csv_with(tmp / "fer.csv", "0,1,Training", header="emotion,pixels,Use"),
     "fer.csv: no column Usage in its header"),
    (lambda tmp: _ckplus_with_label(tmp / "ck", "joy"),
     "manifest.csv:3: label 'joy' is not one of angry, disgust"),
    (lambda tmp: _expw_with_corner(tmp / "expw", "left"),
     "faces.csv:2: a box corner is not a number"),
    (lambda tmp: _folders_with_a_broken_png(tmp / "faces"),
     "sad/000.png: not a picture that can be read"),
    (lambda tmp: _fer2013_csv_with(tmp / "fer.csv", "0," + " ".join(["1"] * 2304)),
     "fer.csv:3: 2 fields where its header has 3"),
    (lambda tmp: _cut_short(str(write_expw(tmp / "expw")), tmp / "expw" / "faces.csv", 3),
     "faces.csv:2: 3 fields where its header has 6"),
    (lambda tmp: _not_utf8(_fer2013_csv_with(tmp / "fer.csv", "0,1,Training"), tmp / "fer.csv"),
     "fer.csv: not UTF-8 text"),
    (lambda tmp: _not_utf8(str(write_expw(tmp / "expw")), tmp / "expw" / "faces.csv"),
     "faces.csv: not UTF-8 text"),
    (lambda tmp: _ferplus_with_vote(tmp / "fer", 1, "x"),
     "fer2013new.csv:3: a FER+ votes row has 'x' for happiness, not a count"),
    (lambda tmp: _cut_short(_ferplus_with_vote(tmp / "fer", 0, "0"),
                            tmp / "fer" / "fer2013new.csv", 5),
     "fer2013new.csv:2: 5 fields where its header has 12"),
])
def test_a_malformed_row_or_picture_is_one_line_naming_where(
    tmp_path: Path, capsys, write, message: str
):
    assert_summary_refused_in_one_line(write(tmp_path), capsys, message)


def _with_byte_order_mark(path: Path) -> None:
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())


def test_a_byte_order_mark_before_a_csv_header_is_not_part_of_its_first_column(tmp_path: Path):
    """Spreadsheet programs write one when they save a CSV as UTF-8."""
    csv_path = _write_fer2013_csv(tmp_path / "fer2013.csv", {"Training": 7})
    # In fer2013.csv the first column is emotion, in faces.csv image, in manifests file.
    fer, votes = write_ferplus(tmp_path / "fer", VOTES)
    expw = write_expw(tmp_path / "expw")
    ckplus = write_ckplus(tmp_path / "ck", subjects=5, per_subject={"happy": 1})
    for path in (csv_path, fer / "manifest.csv", votes, expw / "faces.csv",
                 ckplus / "manifest.csv"):
        _with_byte_order_mark(path)
    assert len(load_split(str(csv_path), "train")) == 7
    assert len(load_split(f"ferplus-soft:{fer},votes={votes}", "train")) == 2
    assert len(load_split(str(expw), "all")) == 1
    assert DatasetSpec.parse(str(ckplus)).kind == "ckplus"
    splits = load_splits(DatasetSpec.parse(str(ckplus)))
    assert len(splits["train"]) + len(splits["val"]) == 5


# FER+ votes for none of our classes: contempt, unknown, NF.
VOTES_FOR_NONE_OF_OURS = [[0] * 7 + [1, 0, 0], [0] * 8 + [2, 0], [0] * 9 + [3]]


def _ferplus_without_our_votes(root: Path, kind: str) -> str:
    fer, votes = write_ferplus(root, VOTES_FOR_NONE_OF_OURS)
    return f"{kind}:{fer},votes={votes}"


def _expw_photos_listing_none(root: Path, option: str) -> str:
    expw = write_expw(root)
    listed = root / "listed.txt"
    listed.write_text("images/astronaut.jpg\n" if option == "skip" else "images/other.jpg\n")
    return f"{expw},{option}={listed}"


def _written(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def _expw_header_only(root: Path) -> str:
    expw = write_expw(root)
    faces = expw / "faces.csv"
    faces.write_text(faces.read_text().splitlines()[0] + "\n")
    return str(expw)


@pytest.mark.parametrize(("write", "message"), [
    (lambda tmp: _ferplus_without_our_votes(tmp / "fer", "ferplus"),
     "manifest.csv (split train) with {tmp}/fer/fer2013new.csv: none of its 3 faces has one "
     "clear FER+ winner among angry, disgust, fear, happy, sad, surprise, neutral"),
    (lambda tmp: _ferplus_without_our_votes(tmp / "fer", "ferplus-soft"),
     "none of its 3 faces has a FER+ vote for angry, disgust"),
    (lambda tmp: _expw_header_only(tmp / "expw"), "expw/faces.csv: no labelled faces"),
    (lambda tmp: _expw_photos_listing_none(tmp / "expw", "photos"),
     "expw/faces.csv: no labelled faces left by photos= and skip="),
    (lambda tmp: _expw_photos_listing_none(tmp / "expw", "skip"),
     "expw/faces.csv: no labelled faces left by photos= and skip="),
    (lambda tmp: f"{write_ckplus(tmp / 'ck', 2, {'happy': 1})},holdout=0.96",
     "ck/manifest.csv: holdout=0.96 leaves none of its 2 subjects to the train split"),
    (lambda tmp: _written(tmp / "fer.csv", "emotion,pixels,Usage\n"),
     "fer.csv: no rows under its header"),
])
def test_a_dataset_left_with_no_faces_is_refused_naming_it(
    tmp_path: Path, capsys, write, message: str
):
    assert_summary_refused_in_one_line(write(tmp_path), capsys, message.format(tmp=tmp_path))


def test_fit_refuses_a_dataset_with_no_faces_before_making_its_run(tmp_path: Path, capsys):
    pytest.importorskip("torch")
    spec = _ferplus_without_our_votes(tmp_path / "fer", "ferplus")
    assert main(["train", "fit", "--data", spec, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none of its 3 faces has one clear FER+ winner" in err
    assert not (tmp_path / "run").exists()


def _expw_with_box(root: Path, box: str) -> str:
    """Tiny ExpW data whose one labelled face has ``box`` (x1,y1,x2,y2) in the 512×512 photo."""
    expw = write_expw(root)
    faces = expw / "faces.csv"
    header, row = faces.read_text().splitlines()
    faces.write_text(f"{header}\n{row.split(',')[0]},{box},happy\n")
    return str(expw)


@pytest.mark.parametrize(("box", "message"), [
    ("600,60,700,170", "faces.csv:2: the box lies wholly outside images/astronaut.jpg (512×512)"),
    ("170,-200,280,-60", "faces.csv:2: the box lies wholly outside images/astronaut.jpg"),
    ("280,60,170,170", "faces.csv:2: the box has no area"),
    ("170,170,280,60", "faces.csv:2: the box has no area"),
    ("170,60,170,170", "faces.csv:2: the box has no area"),
    ("nan,60,280,170", "faces.csv:2: a box corner is not a finite number"),
    ("170,60,inf,170", "faces.csv:2: a box corner is not a finite number"),
])
def test_an_expw_box_that_holds_no_face_of_its_photo_is_refused_naming_its_line(
    tmp_path: Path, capsys, box: str, message: str
):
    assert main(["train", "summary", "--data", _expw_with_box(tmp_path / "expw", box)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("memegen: ") and err.count("\n") == 1, err
    assert message in err


def test_report_refuses_an_expw_box_outside_its_photo_too(tmp_path: Path):
    from memegen.training.report import match_photos

    spec = DatasetSpec.parse(_expw_with_box(tmp_path / "expw", "600,60,700,170"))
    with pytest.raises(DatasetError, match=r"faces\.csv:2: the box lies wholly outside"):
        next(match_photos(spec, 0.4))


@pytest.mark.parametrize("margin", ["-0.5", "nan", "inf", "1.5"])
def test_an_expw_margin_out_of_the_crop_margins_range_is_refused(tmp_path: Path, margin: str):
    expw = write_expw(tmp_path / "expw")
    with pytest.raises(DatasetError, match="margin= must be from 0 to 1"):
        DatasetSpec.parse(f"{expw},margin={margin}")


def test_a_picture_too_large_for_pillow_is_one_line_naming_it(
    tmp_path: Path, capsys, monkeypatch
):
    root = write_class_folders(tmp_path / "faces", {"train": 1})
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 48×48 face is then a "bomb"
    assert main(["train", "summary", "--data", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "angry/000.png: too large a picture to read" in err


def test_ferplus_rows_are_plain_digits_only(tmp_path: Path, capsys):
    fer, votes = write_ferplus(tmp_path / "fer", VOTES)
    manifest = fer / "manifest.csv"
    manifest.write_text(manifest.read_text().replace(",train,2\n", ",train,²\n"))
    assert main(["train", "summary", "--data", f"ferplus:{fer},votes={votes}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "manifest.csv:2: fer2013_row '²' is not a row of" in err


def test_a_negative_seed_is_refused_when_the_spec_is_parsed(tmp_path: Path):
    ckplus = write_ckplus(tmp_path / "ck", subjects=2, per_subject={"happy": 1})
    with pytest.raises(DatasetError, match="seed= must be a whole number from 0"):
        DatasetSpec.parse(f"{ckplus},seed=-1")


def test_macos_appledouble_files_in_a_class_folder_are_skipped(tmp_path: Path):
    root = write_class_folders(tmp_path / "faces", {"train": 1})
    (root / "train" / "happy" / "._000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    assert len(load_split(str(root), "train")) == len(LABELS)


def test_fer2013_usage_names_pick_a_split_in_any_case(tmp_path: Path):
    csv_path = _write_fer2013_csv(
        tmp_path / "fer2013.csv", {"Training": 7, "PublicTest": 7, "PrivateTest": 7}
    )
    assert load_split(f"{csv_path},split=publictest", "train").name == "fer2013/val"
    assert load_split(f"{csv_path},split=PRIVATETEST", "train").name == "fer2013/test"
    assert load_split(f"{csv_path},split=VAL", "train").name == "fer2013/val"


# FER+ votes (neutral … NF) that tie angry with happy, and then angry with surprise.
ANGRY_HAPPY_TIE = [0, 3, 0, 0, 3, 0, 0, 0, 1, 0]
ANGRY_SURPRISE_TIE = [0, 0, 2, 0, 2, 0, 0, 0, 0, 0]


def test_ferplus_soft_breaks_a_tie_with_fer2013s_label_when_it_is_among_the_tied(
    tmp_path: Path,
):
    fer, votes = write_ferplus(
        tmp_path / "fer", [ANGRY_HAPPY_TIE, ANGRY_HAPPY_TIE, ANGRY_SURPRISE_TIE, VOTES[0]],
        folders=["happy", "sad", "surprise", "happy"],
    )
    dataset = load_split(f"ferplus-soft:{fer},votes={votes}", "train")
    # Happy's folder names a tied class; sad's does not, so the first tied in LABELS.
    assert [LABELS[label] for label in dataset.labels] == ["happy", "angry", "surprise", "neutral"]
    majority = load_split(f"ferplus:{fer},votes={votes}", "train")
    assert [LABELS[label] for label in majority.labels] == ["neutral"]  # ties still dropped


def test_ferplus_class_folders_are_matched_in_any_case(tmp_path: Path):
    fer, votes = write_ferplus(tmp_path / "fer", [VOTES[0], VOTES[3]], folders=["Angry", "HAPPY"])
    dataset = load_split(f"ferplus-soft:{fer},votes={votes},blend=0.5", "train")
    assert [LABELS[label] for label in dataset.labels] == ["angry", "happy"]


@pytest.mark.parametrize(("spec", "message"), [
    ("{faces},holdout=0.5,margin=0.3,seed=9",
     "folders takes no holdout= (ckplus only), margin= (expw only), seed= (ckplus only)"),
    ("fer2013-csv:{faces}.csv,holdout=0.5", "fer2013-csv takes no holdout= (ckplus only)"),
    ("ckplus:{faces},votes={faces}/train", "ckplus takes no votes= (ferplus or ferplus-soft only)"),
    ("expw:{faces},seed=1", "expw takes no seed= (ckplus only)"),
])
def test_an_option_the_kind_of_dataset_does_not_read_is_refused_by_name(
    tmp_path: Path, spec: str, message: str
):
    faces = write_class_folders(tmp_path / "faces", {"train": 1})
    with pytest.raises(DatasetError) as refused:
        DatasetSpec.parse(spec.format(faces=faces))
    assert message in str(refused.value)


def test_report_tells_apart_datasets_of_one_name_by_their_spec(tmp_path: Path):
    pytest.importorskip("torch")
    from tiny_networks import write_float_ensemble

    manifest = write_float_ensemble(tmp_path / "models")
    folders = write_class_folders(tmp_path / "g" / "fer2013", {"train": 1, "val": 1})
    csv_path = _write_fer2013_csv(tmp_path / "g" / "fer2013.csv", {"PublicTest": 14})
    out = tmp_path / "report"
    assert main(["train", "report", "--manifest", str(manifest), "--data", str(folders),
                 str(csv_path), "--out", str(out)]) == 0
    measured = json.loads((out / "report.json").read_text())["datasets"]
    assert {name: numbers["ensemble"]["examples"] for name, numbers in measured.items()} == {
        f"fer2013/val ({folders})": 7, f"fer2013/val ({csv_path})": 14
    }
    pictures = re.findall(r"\]\((confusion-[^)]+\.png)\)", (out / "report.md").read_text())
    assert len(set(pictures)) == 2 and all((out / picture).is_file() for picture in pictures)

    # Class folders without splits named fer2013-val: a confusion PNG named as fer2013/val's.
    alike = write_class_folders(tmp_path / "h", {"fer2013-val": 1}) / "fer2013-val"
    assert main(["train", "report", "--manifest", str(manifest), "--data", str(folders),
                 str(alike), "--out", str(out)]) == 0
    pictures = re.findall(r"\]\((confusion-[^)]+\.png)\)", (out / "report.md").read_text())
    assert pictures == ["confusion-fer2013-val.png", "confusion-fer2013-val-2.png"]


def test_report_refuses_a_dataset_given_twice(tmp_path: Path, capsys):
    (tmp_path / "manifest.json").write_text("{}")
    faces = write_class_folders(tmp_path / "faces", {"val": 1})
    assert main(["train", "report", "--manifest", str(tmp_path / "manifest.json"),
                 "--data", str(faces), str(faces), "--out", str(tmp_path / "report")]) == 2
    assert capsys.readouterr().err == (
        f"memegen: --data names {faces} twice; give each dataset once\n"
    )
    assert not (tmp_path / "report").exists()


def test_report_refuses_to_measure_an_only_train_split_unless_named(tmp_path: Path, capsys):
    (tmp_path / "manifest.json").write_text("{}")
    faces = write_class_folders(tmp_path / "faces", {"train": 1})
    assert main(["train", "report", "--manifest", str(tmp_path / "manifest.json"),
                 "--data", str(faces), "--out", str(tmp_path / "report")]) == 2
    assert capsys.readouterr().err == (
        f"memegen: {faces}: its only split is train, which the models may have trained on; "
        f"give {faces},split=train to measure it anyway\n"
    )
    assert not (tmp_path / "report").exists()


def test_report_with_nothing_to_measure_is_refused(tmp_path: Path, capsys):
    (tmp_path / "manifest.json").write_text("{}")
    assert main(["train", "report", "--manifest", str(tmp_path / "manifest.json"),
                 "--out", str(tmp_path / "report")]) == 2
    assert capsys.readouterr().err == (
        "memegen: train report needs --data or --photos: there is nothing to measure\n"
    )
    assert not (tmp_path / "report").exists()
