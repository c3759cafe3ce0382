"""Readers that turn the datasets on disk into grey face crops and labels."""

from __future__ import annotations

import csv
import hashlib
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from memegen import LABELS
from memegen.config import whole_number
from memegen.errors import UserError
from memegen.facecrop import crop_face

# FER+ vote columns in its CSV, and the name each has here (None: not one of ours).
FERPLUS_COLUMNS = {
    "neutral": "neutral",
    "happiness": "happy",
    "surprise": "surprise",
    "sadness": "sad",
    "anger": "angry",
    "disgust": "disgust",
    "fear": "fear",
    "contempt": None,
    "unknown": None,
    "NF": None,
}
CKPLUS_NAMES = {"anger": "angry", "sadness": "sad", "contempt": None}
# fer2013.csv's Usage values and the split each is, named as in FER2013's class-folder
# tree, so that ``train`` is trained on and ``val`` weighed and measured on either way.
FER2013_SPLITS = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


class DatasetError(UserError):
    """A dataset spec, or the data it names, that cannot be read as asked; the message names
    the spec or the path and what is wrong."""


@dataclass
class FaceDataset:
    """Grey square face crops (N×S×S uint8) with label indices into ``LABELS``."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    soft_labels: np.ndarray | None = None
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(LABELS))
        return {label: int(count) for label, count in zip(LABELS, counts, strict=True)}

    def subset(self, indices: np.ndarray, name: str | None = None) -> FaceDataset:
        return FaceDataset(
            name or self.name,
            self.images[indices],
            self.labels[indices],
            None if self.soft_labels is None else self.soft_labels[indices],
            None if self.groups is None else self.groups[indices],
        )


def require_every_class(labels: np.ndarray, name: str, fitted: str) -> None:
    """Raise :class:`DatasetError` unless ``labels`` hold every class of ``LABELS``.

    ``fitted`` is one number per class (a bias) fitted to these faces: for a class with
    no faces the fit has only faces that are not it, so it pushes that class down without
    end (to about -16 for a class bias), and the vote can then never say it.
    """
    missing = [label for index, label in enumerate(LABELS) if not np.any(labels == index)]
    if missing:
        raise DatasetError(
            f"{name} has no faces of {', '.join(missing)}: {fitted} cannot be fitted for a "
            "class without examples (it would be pushed down until never said); fit on "
            "faces of every class"
        )


def load_class_folders(root: Path, size: int = 48, name: str | None = None) -> FaceDataset:
    """Read ``root/<label>/*.png``. Folders whose name is no label (``contempt/``, which
    some datasets add) are skipped and named on stderr, so that a misnamed one is noticed."""
    folders = class_folders(root)
    others = sorted(child.name for child in Path(root).iterdir()
                    if child.is_dir() and child not in folders.values())
    if others:
        print(f"memegen: {root}: skipped folders that name no expression "
              f"({', '.join(LABELS)}): {', '.join(others)}", file=sys.stderr)
    images, labels = [], []
    for label_index, label in enumerate(LABELS):
        if label not in folders:
            continue
        for path in sorted(folders[label].iterdir()):
            # ``._NAME`` files are macOS's AppleDouble metadata, left on copies to other disks.
            if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("._"):
                continue
            images.append(_read_grey(path, size))
            labels.append(label_index)
    if not images:
        raise DatasetError(f"no labelled images under {root}")
    return FaceDataset(
        name or Path(root).name,
        np.stack(images),
        np.asarray(labels, dtype=np.int64),
    )


def label_of_folder(name: str) -> str | None:
    """The label a folder called ``name`` holds, in any case (``Angry/`` is angry's, as some
    datasets name them), or None when it names none."""
    label = name.lower()
    return label if label in LABELS else None


def class_folders(root: Path) -> dict[str, Path]:
    """The folder of each label under ``root`` (:func:`label_of_folder`). Two folders for
    one label raise :class:`DatasetError`."""
    found: dict[str, Path] = {}
    for child in sorted(Path(root).iterdir()):
        label = label_of_folder(child.name)
        if label is None or not child.is_dir():
            continue
        if label in found:
            raise DatasetError(
                f"{root}: both {found[label].name}/ and {child.name}/ hold {label} faces"
            )
        found[label] = child
    return found


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out) with ``fraction`` of every class held out."""
    rng = np.random.default_rng(seed)
    kept, held_out = [], []
    for label in np.unique(labels):
        indices = rng.permutation(np.flatnonzero(labels == label))
        cut = round(len(indices) * fraction)
        held_out.append(indices[:cut])
        kept.append(indices[cut:])
    return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held_out))


def image_digests(images: np.ndarray) -> np.ndarray:
    """A 64-bit digest of each image's pixels, to recognise the same face in another dataset.

    FER+ relabels FER2013's images and drops some, so row numbers differ between
    the two; pixels do not. Identical copies (FER2013 has a few) share a digest.
    """
    digests = [hashlib.blake2b(image.tobytes(), digest_size=8).digest() for image in images]
    return np.array([int.from_bytes(digest) for digest in digests], dtype=np.uint64)


def split_by_digests(
    images: np.ndarray, held_out_digests: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out): held out are the images whose digest is in ``held_out_digests``."""
    held = np.isin(image_digests(images), held_out_digests)
    return np.flatnonzero(~held), np.flatnonzero(held)


def load_fer2013_csv(path: Path, usage: str) -> FaceDataset:
    """The rows of one ``Usage`` of the original ``fer2013.csv`` (``emotion,pixels,Usage``),
    named ``STEM/SPLIT`` as the class-folder tree names its splits (``FER2013_SPLITS``).

    FER2013's emotion numbers 0–6 are already in the order of ``LABELS``.
    """
    images, labels = [], []
    for line, row in _csv_rows(path, ("emotion", "pixels", "Usage")):
        if row["Usage"] != usage:
            continue
        try:
            pixels = np.array(row["pixels"].split(), dtype=np.int64)
            emotion = int(row["emotion"])
        except ValueError:
            raise DatasetError(f"{path}:{line}: emotion and pixels must be whole numbers") from None
        if pixels.size != 48 * 48 or pixels.min() < 0 or pixels.max() > 255:
            raise DatasetError(f"{path}:{line}: pixels must be 2304 values from 0 to 255")
        if not 0 <= emotion < len(LABELS):
            raise DatasetError(f"{path}:{line}: emotion {emotion} is not from 0 to 6")
        images.append(pixels.astype(np.uint8).reshape(48, 48))
        labels.append(emotion)
    if not images:
        raise DatasetError(f"{path}: no rows of Usage {usage!r}")
    name = f"{Path(path).stem}/{FER2013_SPLITS.get(usage, usage)}"
    return FaceDataset(name, np.stack(images), np.array(labels))


def ferplus_distribution(votes: dict[str, str]) -> np.ndarray | None:
    """FER+ votes of one image as a distribution over ``LABELS``; None if none are ours."""
    counts = np.zeros(len(LABELS))
    for column, label in FERPLUS_COLUMNS.items():
        if label is not None:
            counts[LABELS.index(label)] += _vote_count(votes.get(column), column)
    total = counts.sum()
    return None if total == 0 else counts / total


def _vote_count(value: str | None, column: str) -> float:
    """One FER+ vote count, or :class:`DatasetError` when the votes file does not hold one."""
    try:
        count = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        count = math.nan
    if not count >= 0:  # NaN (not a number at all) fails too
        raise DatasetError(f"a FER+ votes row has {value!r} for {column}, not a count")
    return count


def _read_votes(votes_csv: Path) -> list[dict[str, str]]:
    """The rows of a FER+ votes file (``fer2013new.csv``), every count of our classes
    checked here, where the file and line can still be named in the error."""
    columns = [column for column, label in FERPLUS_COLUMNS.items() if label is not None]
    rows = []
    for line, row in _csv_rows(votes_csv, columns):
        for column in columns:
            try:
                _vote_count(row[column], column)
            except DatasetError as error:
                raise DatasetError(f"{votes_csv}:{line}: {error}") from None
        rows.append(row)
    return rows


def with_ferplus_labels(dataset: FaceDataset, votes_csv: Path, soft: bool) -> FaceDataset:
    """Relabel FER2013 (rows in ``fer2013.csv`` order) with the FER+ votes of each image.

    Majority mode keeps images whose most-voted class is ours and unique; soft
    mode keeps every image with at least one vote for our classes and stores
    the vote distribution as its target, its label the most-voted class (on a tie,
    FER2013's label if it is one of those tied, else the first tied in ``LABELS``).
    """
    rows = _read_votes(votes_csv)
    if len(rows) < len(dataset):
        raise DatasetError(f"{votes_csv} has {len(rows)} rows for {len(dataset)} images")
    source = f"{dataset.name} with {votes_csv}"
    return _relabel_with_votes(dataset, rows[: len(dataset)], soft, source)


def _relabel_with_votes(
    fer2013: FaceDataset, vote_rows: list[dict[str, str]], soft: bool, source: str
) -> FaceDataset:
    """Keep the images of ``fer2013`` whose FER+ votes give a label (see
    ``with_ferplus_labels``); none left is a :class:`DatasetError` naming ``source``.

    A soft-mode tie is broken by FER2013's own label, which is one annotator more,
    before the order of ``LABELS``: that order alone would count every tie with happy,
    say, as happy, and so skew the class counts that balancing and stratified holdouts
    read (about 5 % of FER+'s faces tie).
    """
    keep, labels, soft_labels = [], [], []
    for index, row in enumerate(vote_rows):
        distribution = ferplus_distribution(row)
        if distribution is None:
            continue
        top = np.flatnonzero(distribution == distribution.max())
        if not soft and len(top) != 1:
            continue
        keep.append(index)
        labels.append(int(fer2013.labels[index]) if fer2013.labels[index] in top else int(top[0]))
        soft_labels.append(distribution)
    if not keep:
        wanted = "a FER+ vote for" if soft else "one clear FER+ winner among"
        raise DatasetError(
            f"{source}: none of its {len(vote_rows)} faces has {wanted} {', '.join(LABELS)}"
        )
    keep_array = np.array(keep, dtype=np.int64)
    return FaceDataset(
        f"{fer2013.name}-ferplus{'-soft' if soft else ''}",
        fer2013.images[keep_array],
        np.array(labels, dtype=np.int64),
        np.array(soft_labels, dtype=np.float32) if soft else None,
    )


def load_ferplus_folders(
    root: Path, votes_csv: Path, soft: bool, split: str | None = None, blend: float | None = None
) -> FaceDataset:
    """FER2013 as class folders, relabelled with FER+ votes.

    The folders' ``manifest.csv`` names each PNG's row in ``fer2013new.csv``
    (column ``fer2013_row``, 0-based), which is how the PNGs find their votes;
    PNGs with no row there have no votes and are left out. ``split`` keeps the
    rows of one value of the manifest's ``split`` column. ``blend`` keeps FER2013's
    own labels instead (see ``blend_with_votes``).
    """
    votes = _read_votes(votes_csv)
    images, rows, folder_labels = [], [], []
    manifest = Path(root) / "manifest.csv"
    for line, row in _csv_rows(manifest, ("file", "split", "fer2013_row")):
        wrong_split = split is not None and row["split"] != split
        if wrong_split or (not row["fer2013_row"] and blend is None):
            continue
        folder = Path(row["file"]).parent.name
        folder_labels.append(_label_index(label_of_folder(folder) or folder, manifest, line))
        number = row["fer2013_row"]
        if number and (not re.fullmatch("[0-9]+", number) or int(number) >= len(votes)):
            raise DatasetError(
                f"{manifest}:{line}: fer2013_row {number!r} is not a row of {votes_csv} "
                f"(it has {len(votes)})"
            )
        rows.append(votes[int(number)] if number else None)
        images.append(_read_grey(Path(root) / row["file"], 48))
    if not images:
        raise DatasetError(f"no images of split {split!r} in {root}/manifest.csv")
    fer2013 = FaceDataset(Path(root).name, np.stack(images), np.array(folder_labels))
    if blend is not None:
        return blend_with_votes(fer2013.name, fer2013.images, fer2013.labels, rows, blend)
    source = f"{manifest}{'' if split is None else f' (split {split})'} with {votes_csv}"
    return _relabel_with_votes(fer2013, rows, soft, source)


def blend_with_votes(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    vote_rows: list[dict[str, str] | None],
    share: float,
) -> FaceDataset:
    """FER2013's labels, each target ``share`` FER+'s vote distribution and the rest one-hot.

    FER2013 has one annotator per face and FER+ ten. A target that keeps the
    first's label but takes part of its weight from the second's votes tells the
    model which faces are unclear, and between which classes, while the model
    still learns the labels the project is measured on. Faces without votes for
    our classes keep a one-hot target; the hard labels stay FER2013's, so
    balancing, counts and the held-out score read them.
    """
    if not 0.0 <= share <= 1.0:
        raise DatasetError(f"the FER+ votes' share must be between 0 and 1, not {share}")
    targets = np.eye(len(LABELS), dtype=np.float32)[labels]
    for index, row in enumerate(vote_rows):
        distribution = None if row is None else ferplus_distribution(row)
        if distribution is not None:
            targets[index] = (1.0 - share) * targets[index] + share * distribution
    return FaceDataset(f"{name}-ferplus-blend{share:g}", images, labels, targets)


def _read_grey(path: Path, size: int | None) -> np.ndarray:
    """The picture at ``path`` in grey, ``size`` px square (None: as it is); one Pillow
    cannot read is a :class:`DatasetError` naming it (a missing one stays
    ``FileNotFoundError``)."""
    try:
        with Image.open(path) as image:
            grey = image.convert("L")
            if size is not None and grey.size != (size, size):
                grey = grey.resize((size, size), Image.Resampling.BOX)
            return np.asarray(grey, dtype=np.uint8)
    except FileNotFoundError:
        raise
    except Image.DecompressionBombError:
        raise DatasetError(
            f"{path}: too large a picture to read (over {2 * Image.MAX_IMAGE_PIXELS} pixels)"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise DatasetError(f"{path}: not a picture that can be read") from None


def _label_index(name: str, path: Path, line: int) -> int:
    """The number of label ``name``, or :class:`DatasetError` naming the file and line."""
    if name not in LABELS:
        raise DatasetError(f"{path}:{line}: label {name!r} is not one of {', '.join(LABELS)}")
    return LABELS.index(name)


@contextmanager
def _csv_reader(path: Path) -> Iterator[csv.DictReader]:
    """A reader of the CSV file at ``path`` whose text or quoting cannot be read is a
    :class:`DatasetError` naming it. A byte-order mark, which spreadsheet programs write,
    is not part of the first column's name."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            yield csv.DictReader(handle)
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    except csv.Error as error:
        raise DatasetError(f"{path}: not a CSV file that can be read ({error})") from None


def _csv_rows(path: Path, columns: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of the CSV file at ``path``, each with its line number, once its header is
    known to hold ``columns``. A row with fewer or more fields than the header is refused:
    its values would sit under the wrong columns, or under none."""
    with _csv_reader(path) as reader:
        header = reader.fieldnames or []
        missing = [column for column in columns if column not in header]
        if missing:
            raise DatasetError(f"{path}: no column {', '.join(missing)} in its header")
        for row in reader:
            if None in row or None in row.values():
                fields = len(header) + len(row.get(None, [])) - list(row.values()).count(None)
                raise DatasetError(
                    f"{path}:{reader.line_num}: {fields} fields where its header has {len(header)}"
                )
            yield reader.line_num, row


def load_ckplus(root: Path, size: int = 48) -> FaceDataset:
    """CK+48 from its ``manifest.csv``; contempt is dropped, subjects kept for splitting."""
    images, labels, subjects = [], [], []
    manifest = Path(root) / "manifest.csv"
    for line, row in _csv_rows(manifest, ("file", "label", "subject")):
        label = CKPLUS_NAMES.get(row["label"], row["label"])
        if label is None:
            continue
        labels.append(_label_index(label, manifest, line))
        images.append(_read_grey(Path(root) / row["file"], size))
        subjects.append(row["subject"])
    if not images:
        raise DatasetError(f"{manifest}: no faces of our labels")
    return FaceDataset("ckplus", np.stack(images), np.array(labels), groups=np.array(subjects))


def split_by_group(
    groups: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out) with whole groups (CK+ subjects) on one side only."""
    names = np.random.default_rng(seed).permutation(np.unique(groups))
    held_names = set(names[: max(1, round(len(names) * fraction))])
    held = np.array([group in held_names for group in groups])
    return np.flatnonzero(~held), np.flatnonzero(held)


def holdout_split(
    dataset: FaceDataset, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held_out) of a run's own holdout: ``fraction`` of the groups, each
    kept whole, when the dataset has them (CK+ subjects, ExpW photos), else ``fraction``
    of every class.

    CK+ holds several frames of each subject's one expression, nearly alike: a frame held
    out while its siblings train would score the network on faces it has in effect seen.
    Without groups the split is :func:`stratified_split`'s, so the same seed holds out the
    same rows as runs made before groups were kept whole.
    """
    if dataset.groups is not None:
        return split_by_group(dataset.groups, fraction, seed)
    return stratified_split(dataset.labels, fraction, seed)


def folds_by_group(groups: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per example, every example of one group (a photo) in the same fold."""
    names = np.random.default_rng(seed).permutation(np.unique(groups))
    fold_of = {name: position % folds for position, name in enumerate(names)}
    return np.array([fold_of[group] for group in groups])


@dataclass(frozen=True)
class LabelledBox:
    """A labelled face in a whole photo (ExpW's ``faces.csv``, at line ``line``)."""

    image: str
    box: tuple[float, float, float, float]
    label: int
    line: int


def expw_boxes(spec: DatasetSpec) -> list[LabelledBox]:
    """The labelled faces of an ``expw`` spec's ``faces.csv``; its ``photos=`` and ``skip=``
    options name text files listing photos (one name per line, as in ``faces.csv``) to keep
    or to leave out.

    Lists, not a seeded split, fix which photos fit a model and which measure it: a split
    computed afresh would move photos between the two if ``faces.csv`` changed.
    """
    _check_paths(spec)
    kept = _photo_names(spec.options["photos"]) if "photos" in spec.options else None
    skipped = _photo_names(spec.options["skip"]) if "skip" in spec.options else set()
    corners = ("x1_left", "y1_top", "x2_right", "y2_bottom")
    faces_csv = spec.path / "faces.csv"
    boxes = []
    for line, row in _csv_rows(faces_csv, ("image", *corners, "label")):
        if (kept is not None and row["image"] not in kept) or row["image"] in skipped:
            continue
        try:
            box = tuple(float(row[key]) for key in corners)
        except ValueError:
            raise DatasetError(f"{faces_csv}:{line}: a box corner is not a number") from None
        if not all(math.isfinite(corner) for corner in box):
            raise DatasetError(f"{faces_csv}:{line}: a box corner is not a finite number")
        x1, y1, x2, y2 = box
        if not (x2 > x1 and y2 > y1):
            raise DatasetError(
                f"{faces_csv}:{line}: the box has no area: x2_right must be above x1_left "
                "and y2_bottom above y1_top"
            )
        label = _label_index(row["label"], faces_csv, line)
        boxes.append(LabelledBox(row["image"], box, label, line))
    if not boxes:
        narrowed = " left by photos= and skip=" if {"photos", "skip"} & spec.options.keys() else ""
        raise DatasetError(f"{faces_csv}: no labelled faces{narrowed}")
    return boxes


def _photo_names(path: str) -> set[str]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    return {line.strip() for line in text.splitlines() if line.strip()}


def require_box_on_photo(root: Path, item: LabelledBox, width: int, height: int) -> None:
    """Raise :class:`DatasetError`, naming ``faces.csv`` and the line, unless the box
    overlaps its photo: the crop of a box wholly off it would be border pixels, a fake
    face with a real label."""
    x1, y1, x2, y2 = item.box
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        raise DatasetError(
            f"{Path(root) / 'faces.csv'}:{item.line}: the box lies wholly outside "
            f"{item.image} ({width}×{height})"
        )


def crop_labelled_boxes(
    root: Path, boxes: Iterable[LabelledBox], margin: float, size: int = 48
) -> FaceDataset:
    """Crop labelled boxes out of whole photos with the inference crop function."""
    images, labels, sources = [], [], []
    loaded: dict[str, np.ndarray] = {}
    for item in boxes:
        if item.image not in loaded:
            loaded = {item.image: _read_grey(Path(root) / item.image, None)}
        height, width = loaded[item.image].shape
        require_box_on_photo(root, item, width, height)
        images.append(crop_face(loaded[item.image], item.box, size, margin))
        labels.append(item.label)
        sources.append(item.image)
    return FaceDataset(
        Path(root).name, np.stack(images), np.array(labels), groups=np.array(sources)
    )


# --- Dataset specs: one string names a reader, a path and its options --------------------

KINDS = ("folders", "fer2013-csv", "ferplus", "ferplus-soft", "ckplus", "expw")
OPTIONS = ("split", "votes", "blend", "holdout", "seed", "margin", "photos", "skip")
# The options each kind reads: one given to another kind would be ignored, and the data
# read otherwise than the user asked.
KIND_OPTIONS = {
    "folders": ("split",),
    "fer2013-csv": ("split",),
    "ferplus": ("split", "votes"),
    "ferplus-soft": ("split", "votes", "blend"),
    "ckplus": ("split", "holdout", "seed"),
    "expw": ("split", "margin", "photos", "skip"),
}
NUMBER_OPTIONS = {"blend": float, "holdout": float, "seed": whole_number, "margin": float}
PATH_OPTIONS = ("votes", "photos", "skip")


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset named on the command line: reader (``kind``), path and options.

    One string per dataset keeps every command's ``--data`` alike, whether it
    reads class folders, CK+ split by subject or ExpW boxes cropped out of photos.
    """

    kind: str
    path: Path
    options: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> DatasetSpec:
        head, *pairs = text.split(",")
        kind, colon, rest = head.partition(":")
        if colon and kind in KINDS:
            path = Path(rest)
        elif colon and re.fullmatch(r"[a-z][a-z0-9-]*", kind) and not Path(head).exists():
            # A mistyped kind would otherwise be read as part of a path that is not there.
            raise DatasetError(
                f"{text!r}: unknown dataset kind {kind!r}; kinds: {', '.join(KINDS)}"
            )
        else:
            path = Path(head)
            kind = detect_kind(path)
        options = {}
        for pair in pairs:
            key, equals, value = pair.partition("=")
            if not equals or key not in OPTIONS:
                raise DatasetError(f"{text!r}: unknown option {pair!r}; keys: {', '.join(OPTIONS)}")
            options[key] = value
            if key in NUMBER_OPTIONS:
                try:
                    NUMBER_OPTIONS[key](value)
                except ValueError:
                    raise DatasetError(f"{text!r}: {key}= takes a number, not {value!r}") from None
        ignored = [key for key in options if key not in KIND_OPTIONS[kind]]
        if ignored:
            raise DatasetError(f"{text!r}: {kind} takes no " + ", ".join(
                f"{key}= ({' or '.join(k for k in KINDS if key in KIND_OPTIONS[k])} only)"
                for key in ignored
            ))
        if "holdout" in options and not 0.0 < float(options["holdout"]) < 1.0:
            raise DatasetError(f"{text!r}: holdout= must be above 0 and below 1")
        if "seed" in options and int(options["seed"]) < 0:
            raise DatasetError(f"{text!r}: seed= must be a whole number from 0")
        if "margin" in options and not 0.0 <= float(options["margin"]) <= 1.0:
            # The range of --crop-margin: none to a whole side of the face on each side.
            raise DatasetError(f"{text!r}: margin= must be from 0 to 1")
        if kind.startswith("ferplus") and "votes" not in options:
            raise DatasetError(f"{text!r}: {kind} needs votes=PATH/fer2013new.csv")
        return cls(kind, path, options)

    def with_split(self, split: str) -> DatasetSpec:
        """This spec narrowed to one split."""
        return DatasetSpec(self.kind, self.path, {**self.options, "split": split})


def detect_kind(path: Path) -> str:
    """The reader for ``path``: a CSV file is FER2013, ``faces.csv`` ExpW, a subject column CK+."""
    if path.is_file() and path.suffix.lower() == ".csv":
        return "fer2013-csv"
    if (path / "faces.csv").is_file():
        return "expw"
    manifest = path / "manifest.csv"
    if manifest.is_file():
        with _csv_reader(manifest) as reader:
            if "subject" in (reader.fieldnames or ()):
                return "ckplus"
    return "folders"


def load_splits(spec: DatasetSpec) -> dict[str, FaceDataset]:
    """The dataset's splits by name (``train``/``val``/..., or ``all`` when it has none)."""
    loaders = split_loaders(spec)
    wanted = spec.options.get("split")
    if spec.kind == "fer2013-csv" and wanted is not None:
        # The CSV's own names for its splits are taken too, in any case as the others are.
        usage = split_named(FER2013_SPLITS, wanted)
        wanted = FER2013_SPLITS[usage] if usage is not None else wanted
    if wanted is not None:
        name = split_named(loaders, wanted)
        if name is None:
            raise DatasetError(f"{spec.path}: no split {wanted!r}; it has {', '.join(loaders)}")
        loaders = {name: loaders[name]}
    return {name: load() for name, load in loaders.items()}


def split_named(names: Iterable[str], wanted: str) -> str | None:
    """The split called ``wanted``, in any case as class folders are (``Train/`` is the
    ``train`` split), unless several differ only in case; then only the exact name."""
    names = list(names)
    if wanted in names:
        return wanted
    matches = [name for name in names if name.casefold() == wanted.casefold()]
    return matches[0] if len(matches) == 1 else None


def split_loaders(spec: DatasetSpec) -> dict[str, Callable[[], FaceDataset]]:
    """A loader per split, by name, ignoring ``split=``: callers list splits before reading any."""
    _check_paths(spec)
    root, options = spec.path, spec.options
    if spec.kind == "folders":
        if class_folders(root):
            return {"all": lambda: load_class_folders(root)}
        splits = sorted(
            child for child in root.iterdir() if child.is_dir() and class_folders(child)
        )
        if not splits:
            raise DatasetError(f"{root}: no <label>/ folders, nor splits holding them")
        return {
            child.name: lambda child=child: load_class_folders(child, name=_name(root, child.name))
            for child in splits
        }
    if spec.kind == "fer2013-csv":
        usages = {row["Usage"] for _, row in _csv_rows(root, ("emotion", "pixels", "Usage"))}
        if not usages:
            raise DatasetError(f"{root}: no rows under its header")
        splits = {FER2013_SPLITS.get(usage, usage): usage for usage in usages}
        return {
            split: lambda usage=splits[split]: load_fer2013_csv(root, usage)
            for split in sorted(splits)
        }
    if spec.kind in ("ferplus", "ferplus-soft"):
        manifest = root / "manifest.csv"
        splits = sorted({row["split"] for _, row in _csv_rows(manifest, ("file", "split"))})
        if not splits:
            raise DatasetError(f"{manifest}: no rows under its header")
        votes, soft = Path(options["votes"]), spec.kind == "ferplus-soft"
        blend = float(options["blend"]) if "blend" in options else None
        return {
            split: lambda split=split: load_ferplus_folders(root, votes, soft, split, blend)
            for split in splits
        }
    if spec.kind == "ckplus":
        fraction, seed = float(options.get("holdout", 0.2)), int(options.get("seed", 0))

        def part(which: int, name: str) -> FaceDataset:
            dataset = load_ckplus(root)
            indices = split_by_group(dataset.groups, fraction, seed)[which]
            if not len(indices):
                subjects = len(np.unique(dataset.groups))
                raise DatasetError(
                    f"{root / 'manifest.csv'}: holdout={fraction:g} leaves none of its "
                    f"{subjects} subjects to the {name} split"
                )
            return dataset.subset(indices, _name(root, name))

        return {"train": lambda: part(0, "train"), "val": lambda: part(1, "val")}
    if spec.kind == "expw":
        margin = float(options.get("margin", 0.0))
        return {"all": lambda: crop_labelled_boxes(root, expw_boxes(spec), margin)}
    raise DatasetError(f"unknown dataset kind {spec.kind!r}; choose from {', '.join(KINDS)}")


def _check_paths(spec: DatasetSpec) -> None:
    """Raise :class:`DatasetError` unless the spec's path and the files its options name exist,
    before any reading starts."""
    for path in (spec.path, *(Path(spec.options[key]) for key in PATH_OPTIONS
                              if key in spec.options)):
        if not path.exists():
            raise DatasetError(f"{path}: no such file or folder")


def _name(root: Path, split: str) -> str:
    return f"{Path(root).name}/{split}"


def load_split(text: str, default_split: str) -> FaceDataset:
    """One split of the dataset ``text`` names: its ``split=`` option, else ``default_split``,
    else its only split."""
    spec = DatasetSpec.parse(text)
    if "split" not in spec.options:
        names = list(split_loaders(spec))
        chosen = split_named(names, default_split) or (
            names[0] if len(names) == 1 else default_split
        )
        spec = spec.with_split(chosen)
    return next(iter(load_splits(spec).values()))
