"""``memegen train ...``: the training half of the command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train, export and report expression models")
    commands = parser.add_subparsers(dest="train_command", required=True)

    fit = commands.add_parser("fit", help="train one CNN on a class-folder dataset")
    fit.add_argument("--data", type=Path, required=True, help="folder with train/<label>/*.png")
    fit.add_argument("--out", type=Path, required=True, help="run folder (resumed if it exists)")
    fit.add_argument("--family", default="vgg")
    fit.add_argument("--width", type=int, default=24)
    fit.add_argument("--depth", type=int, default=2)
    fit.add_argument("--epochs", type=int, default=30)
    fit.add_argument("--batch-size", type=int, default=128)
    fit.add_argument("--learning-rate", type=float, default=3e-3)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--threads", type=int, default=2)
    fit.add_argument("--holdout", type=float, default=0.08,
                     help="fraction of train/ kept aside to pick the best epoch")
    fit.set_defaults(handler=_fit)

    export = commands.add_parser("export", help="write ONNX + manifest for trained runs")
    export.add_argument("runs", type=Path, nargs="+", help="run folders to export")
    export.add_argument("--out", type=Path, required=True, help="folder for the ONNX files")
    export.add_argument("--crop-margin", type=float, default=0.1)
    export.set_defaults(handler=_export)


def _fit(args: argparse.Namespace) -> int:
    import numpy as np

    from memegen.training.datasets import load_class_folders, stratified_split
    from memegen.training.train import TrainConfig, train

    config = TrainConfig(
        family=args.family,
        width=args.width,
        depth=args.depth,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        threads=args.threads,
    )
    dataset = load_class_folders(args.data / "train", name=args.data.name)
    kept, held_out = stratified_split(dataset.labels, args.holdout, args.seed)
    train_set, val_set = dataset.subset(kept), dataset.subset(held_out, "holdout")
    print(f"train {train_set.class_counts()}\nholdout {val_set.class_counts()}", file=sys.stderr)
    result = train(config, train_set, val_set, args.out)
    np.save(args.out / "holdout_indices.npy", held_out)
    print(json.dumps(asdict(result)))
    return 0


def _export(args: argparse.Namespace) -> int:
    from memegen.training.export import export_runs

    manifest_path = export_runs(args.runs, args.out, crop_margin=args.crop_margin)
    print(manifest_path)
    return 0


