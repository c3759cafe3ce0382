"""``memegen train ...``: the training half of the command line."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from memegen.config import whole_number
from memegen.errors import UserError

# Spelled out here, not imported: building the parser must not import numpy,
# OpenCV or torch, or every ``memegen`` command would start slowly.
# tests/test_training_datasets.py checks they match balance.py and datasets.py, and
# tests/test_train.py that PRECISIONS matches train.py and FAMILIES and HEADS
# architectures.py.
BALANCE_CHOICES = ("none", "undersample", "oversample", "weighted")
PRECISIONS = ("fp32", "bf16")
FAMILIES = ("vgg", "separable", "resnet")
HEADS = ("pool", "grid")
DATASET_KINDS = ("folders", "fer2013-csv", "ferplus", "ferplus-soft", "ckplus", "expw")
SPEC_HELP = (
    "dataset as [KIND:]PATH[,key=value...]; KIND: " + ", ".join(DATASET_KINDS)
    + " (guessed from PATH when left out); keys: split=NAME (one split), votes=CSV (FER+ "
    "votes, fer2013new.csv), blend=S (ferplus-soft only: FER2013's labels kept, S of each "
    "target from the FER+ votes), holdout=F and seed=N (CK+ subject split), margin=M (ExpW "
    "crop, 0 to 1), photos=LIST and skip=LIST (ExpW: keep or leave out the photos a text "
    "file lists, one per line); an option of another kind is refused"
)
#: The modules of the ``train`` extra (pyproject.toml): a step that imports one without it
#: installed says which extra to install.
TRAINING_EXTRA = ("torch", "onnx", "optuna", "sqlalchemy")
DEFAULT_STORAGE = "sqlite:///runs/search.db"
DEFAULT_TEACHER_SHARE = 0.5
IOU_HELP = "overlap (IoU) for a detection to count as the labelled face"
CROP_MARGIN_HELP = (
    "margin added around a detected face box before cropping, as a fraction of its side "
    "(0.0 measured best end to end on the ExpW photos; see docs/model-card.md)"
)
INDICES_HELP = (
    "use these rows of --val-data's train split instead of its val split: a run's "
    "holdout_indices.npy, held out by every run fitted with the same seed"
)
PRECISION_HELP = (
    "bf16 autocasts the training passes: about twice as fast on CPUs with AVX-512 BF16, "
    "slower on others; held-out scoring stays float32"
)
HEAD_HELP = (
    "pool: average the last feature map (where on the face a feature was is lost); "
    "grid: keep it as 3x3 cells read by a small dense layer"
)
MIRROR_HELP = "average each model over the crop and its mirror image (twice the time per face)"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train, export and report expression models")
    parser.set_defaults(handler=_run)
    commands = parser.add_subparsers(dest="train_command", required=True)

    summary = commands.add_parser("summary", help="count examples per class and split")
    summary.add_argument("--data", nargs="+", required=True, help=SPEC_HELP)
    summary.set_defaults(train_handler=_summary)

    fit = commands.add_parser("fit", help="train one CNN")
    fit.add_argument("--data", required=True,
                     help=f"its train split is used (or its only one); {SPEC_HELP}")
    fit.add_argument("--out", type=Path, required=True,
                     help="run folder (resumed if it holds a run: with the same settings but "
                     "for --epochs and --threads, and the same held-out faces)")
    fit.add_argument("--family", default="vgg")
    fit.add_argument("--width", type=whole_number, default=24)
    fit.add_argument("--depth", type=whole_number, default=2)
    fit.add_argument("--head", choices=HEADS, default="pool", help=HEAD_HELP)
    fit.add_argument("--epochs", type=whole_number, default=30)
    fit.add_argument("--batch-size", type=whole_number, default=128)
    fit.add_argument("--learning-rate", type=float, default=3e-3)
    fit.add_argument("--balance", choices=BALANCE_CHOICES, default="none",
                     help="class balancing; the run's class_counts.json records its effect")
    fit.add_argument("--seed", type=whole_number, default=0)
    fit.add_argument("--threads", type=whole_number, default=2)
    fit.add_argument("--precision", choices=PRECISIONS, default="fp32", help=PRECISION_HELP)
    fit.add_argument("--holdout", type=float, default=0.08,
                     help="fraction of train/ kept aside to pick the best epoch (of every "
                     "class, or of the CK+ subjects or ExpW photos, each kept whole)")
    fit.add_argument("--holdout-from", type=_existing, metavar="RUN",
                     help="hold out exactly the images RUN held out (matched by pixels, so it "
                     "works across datasets such as FER2013 and FER+), instead of --holdout; "
                     "members that share a holdout let the ensemble weigh them on unseen rows")
    fit.add_argument("--low-resolution", type=float, default=0.0, metavar="SHARE",
                     help="share of training faces, 0 to 1, shrunk to 25-75 %% of their side "
                     "and scaled back, as small faces in group photos reach the classifier")
    fit.add_argument("--augment-strength", type=_augment_strength, default=1.0, metavar="S",
                     help="every alteration but the mirror and --low-resolution scaled by S, "
                     f"0 to {MAX_AUGMENT_STRENGTH:g} (0: mirror only, 1: as designed); gentler "
                     "for a fine-tune that should fit clean faces more closely")
    fit.add_argument("--label-smoothing", type=float, default=0.1, metavar="E",
                     help="share of each target spread evenly over all classes (0: off); it "
                     "keeps a network from growing sure of FER2013's noisy labels, and so "
                     "less sure than it is right")
    fit.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                     help="blend each batch's faces and targets in pairs, the share drawn "
                     "from Beta(ALPHA, ALPHA) (0.2 is usual; 0: off)")
    fit.add_argument("--early-epochs", type=whole_number, default=0, metavar="K",
                     help="train the first K epochs on faces scaled down to --early-side "
                     "(0: off); a smaller face costs less a pass, so more epochs fit the "
                     "same time; the rest train, and every epoch is scored, at full size")
    fit.add_argument("--early-side", type=whole_number, default=32, metavar="S",
                     help="the side in pixels of the faces the --early-epochs train on")
    fit.add_argument("--average-epochs", type=whole_number, default=0, metavar="K",
                     help="run the last K epochs at the constant --learning-rate and average "
                     "their weights (stochastic weight averaging; 0: off); the average, its "
                     "BatchNorm statistics recomputed, is what is scored and kept. Best from "
                     "trained weights (--init-from)")
    fit.add_argument("--init-from", type=_existing,
                     help="start from these weights (a run's best.pt) to fine-tune")
    fit.add_argument("--teacher", type=_existing, metavar="MANIFEST",
                     help="an exported ensemble whose vote (without class bias) on each "
                     "training face is blended into its target (distillation); its members "
                     "must not have trained on this run's held-out faces")
    fit.add_argument("--teacher-share", type=_share, metavar="SHARE",
                     help=f"the teacher's share of each target, 0 to 1 (default "
                     f"{DEFAULT_TEACHER_SHARE:g}; only with --teacher)")
    fit.add_argument("--focus", type=_existing, metavar="MANIFEST",
                     help="a gated ensemble: the training faces its gate would read its last "
                     "model on are repeated --focus-copies more times, for a member that will "
                     "itself be gated (read through the ONNX files, as the app reads them)")
    fit.add_argument("--focus-copies", type=whole_number, default=2, metavar="K",
                     help="extra copies of each such face, each augmented afresh (with --focus)")
    fit.set_defaults(train_handler=_fit)

    search = commands.add_parser("search", help="search architectures and settings (Optuna)")
    search.add_argument("--data", required=True,
                        help=f"its train split is used (or its only one); {SPEC_HELP}")
    search.add_argument("--storage", default=DEFAULT_STORAGE,
                        help="SQLAlchemy URL of the study database; share it to search together")
    search.add_argument("--study", default="expressions", help="study name (resumed if it exists)")
    search.add_argument("--trials", type=_at_least_one, default=20,
                        help="most trials this process runs")
    search.add_argument("--timeout", type=float, help="start no trial after this many seconds")
    search.add_argument("--subset", type=float, default=1.0,
                        help="fraction of the data to search on (stratified)")
    search.add_argument("--runs", type=Path, default=Path("runs/search"),
                        help="trial runs go to RUNS/STUDY/trial-NNNN")
    search.add_argument("--epochs", type=whole_number, default=8)
    search.add_argument("--batch-size", type=whole_number, default=128)
    search.add_argument("--threads", type=whole_number, default=2)
    search.add_argument("--precision", choices=PRECISIONS, default="fp32", help=PRECISION_HELP)
    search.add_argument("--holdout", type=float, default=0.1)
    search.add_argument("--seed", type=whole_number, default=0)
    search.add_argument("--families", type=_names_from(FAMILIES, "family"),
                        default=",".join(FAMILIES),
                        help="architecture families to try, comma-separated "
                        f"({', '.join(FAMILIES)})")
    search.add_argument("--widths", type=_widths, default="16,24,32,48",
                        help="widths to try, comma-separated (at least 2)")
    search.add_argument("--max-depth", type=whole_number, default=3)
    search.add_argument("--heads", type=_names_from(HEADS, "head"), default=",".join(HEADS),
                        help=f"heads to try, comma-separated ({', '.join(HEADS)})")
    search.set_defaults(train_handler=_search)

    export = commands.add_parser("export", help="write ONNX + manifest for trained runs")
    export.add_argument("runs", type=_existing, nargs="+", help="run folders to export")
    export.add_argument("--out", type=Path, required=True, help="folder for the ONNX files")
    export.add_argument("--crop-margin", type=_crop_margin, default=0.0, help=CROP_MARGIN_HELP)
    export.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                        help=MIRROR_HELP)
    export.set_defaults(train_handler=_export)

    ensemble = commands.add_parser(
        "ensemble", help="fit per-class vote weights on held-out data, export ONNX + manifest"
    )
    ensemble.add_argument("runs", type=_existing, nargs="+", help="run folders to combine")
    _add_weighting_set_arguments(ensemble)
    ensemble.add_argument("--out", type=Path, required=True, help="folder for ONNX + manifest")
    ensemble.add_argument("--crop-margin", type=_crop_margin, default=0.0, help=CROP_MARGIN_HELP)
    ensemble.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                          help=MIRROR_HELP)
    ensemble.set_defaults(train_handler=_ensemble)

    bias = commands.add_parser(
        "bias", help="fit per-class biases that even out the vote's class priors (in place)"
    )
    bias.add_argument("manifest", type=_existing, help="manifest.json of an exported ensemble")
    bias.add_argument("--temperature", action="store_true",
                      help="also fit one temperature so that the vote's confidence matches its "
                      "accuracy on the weighting set (only where the app's photos resemble it: "
                      "see docs/training.md)")
    _add_weighting_set_arguments(bias)
    bias.set_defaults(train_handler=_bias)

    photo = commands.add_parser(
        "photo-models", help="refit trained networks' last layer on faces found in labelled "
        "photos and let them read faces found in photos (in place)"
    )
    photo.add_argument("manifest", type=_existing, help="manifest.json of an exported ensemble")
    photo.add_argument("runs", type=_existing, nargs="+",
                       help="run folders (best.pt) whose networks become the photo models")
    photo.add_argument("--photos", required=True,
                       help="ExpW-style labelled photos none of the runs trained on, as "
                       "[expw:]PATH[,photos=LIST][,skip=LIST]; keep the photos you measure "
                       "on out of them")
    photo.add_argument("--iou", type=_overlap, default=0.4, help=IOU_HELP)
    photo.set_defaults(train_handler=_photo_models)

    mirror = commands.add_parser(
        "mirror", help="keep each model's mirror pass only where, and for the faces on which, "
        "it helps the vote on held-out data"
    )
    mirror.add_argument("manifest", type=_existing, help="manifest.json of a mirror-pass ensemble")
    _add_weighting_set_arguments(mirror)
    mirror.add_argument("--out", type=Path, required=True, help="folder for ONNX + manifest")
    mirror.add_argument("--member-temperatures", action="store_true",
                        help="also fit each model a temperature for its own readings, applied "
                        "before the vote (see docs/training.md for when it helps)")
    mirror.set_defaults(train_handler=_mirror)

    gate = commands.add_parser(
        "gate", help="read the last models only on faces the models before them are unsure "
        "of, as far as that costs the vote nothing on held-out data"
    )
    gate.add_argument("manifest", type=_existing,
                      help="manifest.json of an ensemble of two models or more (after mirror)")
    _add_weighting_set_arguments(gate)
    gate.add_argument("--out", type=Path, required=True, help="folder for ONNX + manifest")
    gate.add_argument("--max-consulted-share", type=_share, default=1.0,
                      help="a time budget: read the last model on at most this share of the "
                      "weighting set's faces (default 1: no budget)")
    gate.add_argument("--gated", type=whole_number, default=1,
                      help="how many of the last models to gate, each on the vote of those "
                      "before it (a cascade: order the models cheapest first); of the "
                      "combinations of gates that cost the vote at most 0.001 nats, the "
                      "fastest on this machine wins")
    gate.set_defaults(train_handler=_gate)

    rebuild = commands.add_parser(
        "rebuild", help="turn an exported float VGG member back into a run to fine-tune"
    )
    rebuild.add_argument("manifest", type=_existing, help="manifest.json of a float ensemble")
    rebuild.add_argument("model", help="the member's name in the manifest")
    rebuild.add_argument("--data", required=True,
                         help=f"the member's training data; its train split is used; {SPEC_HELP}")
    rebuild.add_argument("--out", type=Path, required=True, help="run folder to write")
    rebuild.set_defaults(train_handler=_rebuild)

    quantize = commands.add_parser(
        "quantize", help="write int8 copies of an exported ensemble (faster on a CPU)"
    )
    quantize.add_argument("manifest", type=_existing, help="manifest.json of the float ensemble")
    quantize.add_argument("--calibration-data", required=True,
                          help="crops that set the activation ranges: the models' training "
                          f"data, never measuring data; its train split is used; {SPEC_HELP}")
    quantize.add_argument("--count", type=_at_least_one, default=512,
                          help="calibration crops to draw")
    quantize.add_argument("--seed", type=whole_number, default=0)
    quantize.add_argument("--out", type=Path, required=True, help="folder for ONNX + manifest")
    quantize.set_defaults(train_handler=_quantize)

    report = commands.add_parser("report", help="measure an exported ensemble, write Markdown")
    report.add_argument("--manifest", type=_existing, required=True)
    report.add_argument("--data", nargs="*", default=[],
                        help="face-crop datasets; every split but train unless split= is given "
                        "(one whose only split is train is refused: give split=train to "
                        "measure it anyway); datasets of one name are told apart by their "
                        "spec; " + SPEC_HELP)
    report.add_argument("--photos", nargs="*", default=[],
                        help="ExpW-style folders (faces.csv + photos), measured end to end, "
                        "as [expw:]PATH[,photos=LIST][,skip=LIST]")
    report.add_argument("--photos-limit", type=_at_least_one,
                        help="at most this many photos per folder")
    report.add_argument("--iou", type=_overlap, default=0.4, help=IOU_HELP)
    report.add_argument("--out", type=Path, required=True)
    report.set_defaults(train_handler=_report)


def _existing(text: str) -> Path:
    """A path the command reads, refused while the arguments are parsed when it is not
    there, rather than after minutes of loading data."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file or folder")
    return path


def _at_least_one(text: str) -> int:
    """A count that must be a whole number from 1: 0 calibration crops or trials would do
    nothing and say nothing, and a negative one would count from the end of a list."""
    try:
        number = whole_number(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be at least 1")
    return number


def _ranged_float(low: float, high: float, low_included: bool) -> Callable[[str], float]:
    """A number from ``low`` (included or not) to ``high`` (included), refused while parsing."""

    def parse(text: str) -> float:
        try:
            number = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (low <= number if low_included else low < number) or not number <= high:
            span = f"from {low} to {high}" if low_included else f"above {low}, at most {high}"
            raise argparse.ArgumentTypeError(f"{text!r}: must be {span}")
        return number

    return parse


#: A crop's margin is a share of the face's side added on each side: none to a whole side.
_crop_margin = _ranged_float(0.0, 1.0, low_included=True)
#: A share of something, none to all of it: a teacher's of each target, a gated model's
#: of the faces (refused here, not after every face has been read and timed).
_share = _ranged_float(0.0, 1.0, low_included=True)
#: Intersection over union: above 0 (every box overlaps nothing by 0) up to 1.
_overlap = _ranged_float(0.0, 1.0, low_included=False)
#: augment.MAX_STRENGTH, spelled out (tests/test_augment.py checks it): see its comment.
MAX_AUGMENT_STRENGTH = 2.0
_augment_strength = _ranged_float(0.0, MAX_AUGMENT_STRENGTH, low_included=True)


def _names_from(known: tuple[str, ...], what: str) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated list of ``known`` names, refused while the arguments are parsed
    when one is not known: ``train search`` would fail only in its first trial, which
    stays in the study's database."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(text.split(","))
        unknown = [name for name in names if name not in known]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(map(repr, unknown))}; choose from {', '.join(known)}"
            )
        return names

    return parse


def _widths(text: str) -> tuple[int, ...]:
    """Comma-separated network widths, each at least 2 (the separable family's stem has
    half as many channels), refused while parsing for the reason ``_names_from`` gives."""
    try:
        widths = tuple(whole_number(width) for width in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: widths are whole numbers, comma-separated"
        ) from None
    if min(widths) < 2:
        raise argparse.ArgumentTypeError(f"{text!r}: every width must be at least 2")
    return widths


def _run(args: argparse.Namespace) -> int:
    """Run the training command asked for.

    The files a training command reads are those its arguments name (datasets, run
    folders, manifests) and the files inside them, so one that is missing, or a file where
    a folder should be (an ``--out`` that names a file, say), is the user's to fix: one
    line naming the path and status 2, not a traceback. The other mistakes a user can fix
    raise ``UserError`` where they are found, and ``memegen.cli.main`` reports them; no
    other ``ValueError`` is caught, since one raised deep in numpy, torch or a step is a
    bug that needs its traceback.

    A step that fails removes the ``--out`` folder it made, so that a failed step leaves
    no empty or half-written folder behind. ``fit`` keeps its run folder: the checkpoints
    in it let the run resume.
    """
    removes_out_on_failure = "out" in args and args.train_handler is not _fit
    made = None
    if removes_out_on_failure and not (args.out.exists() or args.out.is_symlink()):
        made = args.out  # not the parents it makes with it: another step may write there
    failed = True
    try:
        status = args.train_handler(args)
        failed = status != 0
        return status
    except (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError) as error:
        print(f"memegen: {error.filename or error}: {error.strerror}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in TRAINING_EXTRA:
            raise
        print(f"memegen: train {args.train_command} needs the training extra, and "
              f"{error.name} is not installed: pip install 'memegen[train]'", file=sys.stderr)
        return 2
    finally:
        if failed and made is not None:
            shutil.rmtree(made, ignore_errors=True)


def _add_weighting_set_arguments(parser: argparse.ArgumentParser) -> None:
    """--val-data and --indices: the held-out faces that ``ensemble``, ``mirror`` and ``bias``
    fit on."""
    parser.add_argument("--val-data", required=True,
                        help="data none of the models trained on; its val split is used (or "
                        f"its only one); {SPEC_HELP}")
    parser.add_argument("--indices", type=_existing, help=INDICES_HELP)


def _summary(args: argparse.Namespace) -> int:
    from memegen import LABELS
    from memegen.training.datasets import DatasetSpec, load_splits

    width = max(len(label) for label in LABELS) + 1
    for text in args.data:
        spec = DatasetSpec.parse(text)
        splits = load_splits(spec)  # before printing, so a bad dataset leaves no header
        print(f"{spec.path} ({spec.kind})")
        header = "".join(label.rjust(width) for label in LABELS)
        print("split".ljust(10) + header + "total".rjust(8))
        for split, dataset in splits.items():
            counts = dataset.class_counts()
            print(split.ljust(10) + "".join(str(counts[label]).rjust(width) for label in LABELS)
                  + str(len(dataset)).rjust(8))
        print()
    return 0


def _fit(args: argparse.Namespace) -> int:
    import numpy as np

    from memegen.training.augment import AugmentConfig
    from memegen.training.datasets import (
        holdout_split,
        image_digests,
        load_split,
        split_by_digests,
    )
    from memegen.training.train import (
        TrainConfig,
        check_holdout,
        check_run_folder,
        train,
    )

    teacher_settings = {}
    if args.teacher:
        from memegen.training.distill import teacher_digest

        # Resolved and digested, so that a resume finds the same teacher however its path is
        # typed, and refuses another file at the same path.
        teacher_settings = {"teacher": str(args.teacher.resolve()),
                            "teacher_digest": teacher_digest(args.teacher),
                            "teacher_share": DEFAULT_TEACHER_SHARE if args.teacher_share is None
                            else args.teacher_share}
    elif args.teacher_share is not None:
        raise UserError("--teacher-share is the share of a --teacher's vote; give --teacher too")
    augment = replace(
        AugmentConfig().scaled(args.augment_strength), low_resolution=args.low_resolution
    )
    config = TrainConfig(
        family=args.family,
        width=args.width,
        depth=args.depth,
        head=args.head,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        threads=args.threads,
        precision=args.precision,
        mixup=args.mixup,
        early_side=args.early_side if args.early_epochs else 0,
        early_epochs=args.early_epochs,
        average_epochs=args.average_epochs,
        label_smoothing=args.label_smoothing,
        balance=args.balance,
        init_from=str(args.init_from or ""),
        **teacher_settings,
        focus=str(args.focus or ""),
        focus_copies=args.focus_copies if args.focus else 0,
        augment=augment,
    )
    # Checked before the data is loaded, and so before the run folder is written.
    if args.holdout_from is None and not 0.0 < args.holdout < 1.0:
        print(f"memegen: --holdout must be above 0 and below 1, not {args.holdout}",
              file=sys.stderr)
        return 2
    if args.holdout_from is not None:
        digests_path = args.holdout_from / "holdout_digests.npy"
        if not digests_path.is_file():
            print(f"memegen: {digests_path} is missing; is {args.holdout_from} a run folder "
                  "made by this version of `memegen train fit`?", file=sys.stderr)
            return 2
    check_run_folder(config, args.out)
    dataset = load_split(args.data, "train")
    if args.holdout_from is None:
        kept, held_out = holdout_split(dataset, args.holdout, args.seed)
    else:
        kept, held_out = split_by_digests(dataset.images, np.load(digests_path))
    if not len(kept) or not len(held_out):
        print(f"memegen: of {len(dataset)} faces, {len(held_out)} are held out and "
              f"{len(kept)} left to train on; both need some", file=sys.stderr)
        return 2
    train_set, val_set = dataset.subset(kept), dataset.subset(held_out, "holdout")
    digests = image_digests(val_set.images)
    check_holdout(args.out, held_out, digests)
    print(f"train {train_set.class_counts()}\nholdout {val_set.class_counts()}", file=sys.stderr)
    if args.teacher:
        from memegen.training.distill import with_teacher_targets

        train_set = with_teacher_targets(train_set, args.teacher, config.teacher_share)
    if args.focus:
        from memegen.training.focus import consulted_by_gate, repeat_faces

        consulted = consulted_by_gate(args.focus, train_set)
        train_set = repeat_faces(train_set, consulted, args.focus_copies)
        print(f"focus: {int(consulted.sum())} of {len(consulted)} training faces consulted by "
              f"the gate, each {args.focus_copies} more times", file=sys.stderr)
    result = train(config, train_set, val_set, args.out, held_out_rows=held_out)
    print(json.dumps(asdict(result)))
    return 0


def _search(args: argparse.Namespace) -> int:
    from memegen.training.datasets import load_split
    from memegen.training.search import SearchSettings, describe, run_search

    # Checked before the data is loaded, and so before the study is opened.
    settings = SearchSettings(
        runs_dir=args.runs,
        epochs=args.epochs,
        batch_size=args.batch_size,
        threads=args.threads,
        precision=args.precision,
        holdout=args.holdout,
        subset=args.subset,
        seed=args.seed,
        families=args.families,
        widths=args.widths,
        max_depth=args.max_depth,
        heads=args.heads,
    )
    dataset = load_split(args.data, "train")
    study = run_search(dataset, args.study, args.storage, args.trials, args.timeout, settings)
    print(describe(study))
    return 0


def _export(args: argparse.Namespace) -> int:
    from memegen.training.export import export_runs

    manifest_path = export_runs(args.runs, args.out, args.crop_margin, args.mirror)
    print(manifest_path)
    return 0


def _weighting_set(args: argparse.Namespace):
    """--val-data's val split, or the --indices rows of its train split."""
    from memegen.training.datasets import load_split

    if args.indices is None:
        weighting_set = load_split(args.val_data, "val")
    else:
        train_set = load_split(args.val_data, "train")
        weighting_set = train_set.subset(_rows_in(args.indices, len(train_set)), "holdout")
        _check_held_out_faces(args.indices, weighting_set.images, args.val_data)
    print(f"weighting set {weighting_set.name}: {weighting_set.class_counts()}", file=sys.stderr)
    return weighting_set


def _check_held_out_faces(indices: Path, images, data: str) -> None:
    """Raise UserError if the run folder that ``indices`` came from recorded other faces for
    those rows (``holdout_digests.npy`` beside it): row numbers of another dataset (FER+'s
    rows are not FER2013's) would pick faces the runs trained on."""
    import numpy as np

    from memegen.training.datasets import image_digests

    recorded_path = indices.parent / "holdout_digests.npy"
    if not recorded_path.is_file():
        return
    recorded, found = np.load(recorded_path), image_digests(images)
    if not np.array_equal(recorded, found):
        differ = int((recorded != found).sum()) if len(recorded) == len(found) else len(found)
        raise UserError(
            f"--indices {indices}: {differ} of these {len(found)} rows of {data} are not the "
            f"faces its run held out ({recorded_path.name} beside it says which); give the "
            "--val-data that run was fitted on"
        )


def _rows_in(path: Path, count: int):
    """The row numbers saved in ``path`` (a .npy of integers, as ``train fit`` writes its
    held-out rows), each below ``count``, or a UserError naming the file."""
    import numpy as np

    with open(path, "rb") as handle:
        is_npy = handle.read(6) == b"\x93NUMPY"  # numpy's own test is a guess: "pickled data"
    if not is_npy:
        raise UserError(f"--indices {path}: not a .npy file of row numbers, so not an indices "
                        "file (train fit writes one as holdout_indices.npy)")
    try:
        rows = np.load(path, allow_pickle=False)
    except ValueError:  # a .npy of Python objects
        raise UserError(f"--indices {path}: not a .npy file of row numbers: "
                        "it holds Python objects") from None
    if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
        raise UserError(f"--indices {path}: expected a list of whole row numbers")
    if not len(rows):
        raise UserError(f"--indices {path}: lists no rows, so there are no faces to fit on")
    if not 0 <= rows.min() <= rows.max() < count:
        raise UserError(f"--indices {path}: row numbers must be from 0 to {count - 1}")
    return rows


def _check_runs_held_out(runs: list[Path], indices: Path, images) -> None:
    """Raise UserError if a run's ``holdout_digests.npy`` lacks a face of the weighting rows
    (``images``, the ``indices`` rows): it trained on them, and weights fitted on faces a
    member learned trust it more than it deserves on new ones. Refused, not warned about:
    the manifest would carry those weights, and their evidence, with nothing to tell."""
    import numpy as np

    from memegen.training.datasets import split_by_digests

    for run in runs:
        recorded = run / "holdout_digests.npy"
        if not recorded.is_file():
            continue
        trained_on = len(split_by_digests(images, np.load(recorded))[0])
        if trained_on:
            raise UserError(
                f"{run} trained on {trained_on} of the {len(images)} weighting faces "
                f"--indices {indices} picks (its {recorded.name} lacks them); weigh with rows "
                "every run held out: runs fitted with the same --seed and --holdout, or "
                "--holdout-from one of them"
            )


def _ensemble(args: argparse.Namespace) -> int:
    from memegen.training.ensemble import build_ensemble

    weighting_set = _weighting_set(args)
    if args.indices is not None:
        _check_runs_held_out(args.runs, args.indices, weighting_set.images)
    print(build_ensemble(args.runs, weighting_set, args.out, args.crop_margin, args.mirror))
    return 0


def _bias(args: argparse.Namespace) -> int:
    from memegen.training.class_bias import add_class_bias

    print(add_class_bias(args.manifest, _weighting_set(args), args.temperature))
    return 0


def _photo_models(args: argparse.Namespace) -> int:
    from memegen.training.photo_models import add_photo_models

    print(add_photo_models(args.manifest, args.runs, args.photos, args.iou))
    return 0


def _mirror(args: argparse.Namespace) -> int:
    from memegen.training.export import refuse_source_folder
    from memegen.training.mirror import fit_mirror_passes

    refuse_source_folder(args.manifest, args.out, "new ensemble")  # before loading data
    print(fit_mirror_passes(
        args.manifest, _weighting_set(args), args.out, args.member_temperatures
    ))
    return 0


def _gate(args: argparse.Namespace) -> int:
    from memegen.training.export import refuse_source_folder
    from memegen.training.gate import fit_gate

    refuse_source_folder(args.manifest, args.out, "gated ensemble")  # before loading data
    print(fit_gate(
        args.manifest, _weighting_set(args), args.out, args.max_consulted_share, args.gated
    ))
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    from memegen.training.datasets import load_split
    from memegen.training.rebuild import rebuild_run

    difference = rebuild_run(args.manifest, args.model, load_split(args.data, "train"), args.out)
    print(f"largest difference from the graph's probabilities: {difference:.1e}", file=sys.stderr)
    print(args.out / "best.pt")
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from memegen.training.datasets import load_split
    from memegen.training.export import refuse_source_folder
    from memegen.training.quantize import quantize_ensemble

    refuse_source_folder(args.manifest, args.out, "int8 copies")  # before loading data
    calibration = load_split(args.calibration_data, "train")
    print(quantize_ensemble(args.manifest, calibration, args.out, args.count, args.seed))
    return 0


def _report(args: argparse.Namespace) -> int:
    from memegen.expressions import ExpressionClassifier
    from memegen.training.datasets import DatasetSpec, load_splits, split_loaders, split_named
    from memegen.training.report import (
        evaluate_crops,
        evaluate_photos,
        named_apart,
        refuse_repeated_specs,
        write_report,
    )

    if not args.data and not args.photos:
        raise UserError("train report needs --data or --photos: there is nothing to measure")
    refuse_repeated_specs("--data", args.data)
    refuse_repeated_specs("--photos", args.photos)
    # Every spec and the splits it measures are settled before the first is measured.
    specs = []
    for text in args.data:
        spec = DatasetSpec.parse(text)
        if "split" in spec.options:
            specs.append((text, spec))
            continue
        names = list(split_loaders(spec))
        trained_on = split_named(names, "train")
        if trained_on is not None and len(names) == 1:
            raise UserError(
                f"{text}: its only split is {trained_on}, which the models may have trained "
                f"on; give {text},split={trained_on} to measure it anyway"
            )
        specs += [(text, spec.with_split(name)) for name in names if name != trained_on]
    photo_specs = [(text, DatasetSpec.parse(text)) for text in args.photos]
    classifier = ExpressionClassifier(args.manifest)
    evaluations = []
    for text, spec in specs:
        for dataset in load_splits(spec).values():
            print(f"evaluating {dataset.name} ({len(dataset)} faces)", file=sys.stderr)
            evaluations.append((text, evaluate_crops(classifier, dataset)))
    photos = [
        (text, evaluate_photos(classifier, spec, args.iou, args.photos_limit))
        for text, spec in photo_specs
    ]
    print(write_report(args.manifest, named_apart(evaluations), named_apart(photos), args.out))
    return 0
