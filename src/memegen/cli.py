"""``memegen serve | make | analyze | captions | train``: a thin shell around ``Pipeline``.

Machine-readable output goes to stdout (JSON Lines for ``analyze``); progress
and errors go to stderr, so ``memegen analyze DIR > out.jsonl`` stays clean.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from memegen import __version__

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff"}
OUTPUT_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp", ".gif": "gif"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memegen", description="Expression-aware meme generator."
    )
    parser.add_argument("--version", action="version", version=f"memegen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the web page and the JSON API")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    _add_captions_option(serve)
    serve.set_defaults(handler=_serve)

    make = commands.add_parser("make", help="turn one photo into a meme")
    make.add_argument("image", type=Path)
    make.add_argument("-o", "--output", type=Path,
                      help="output file; .jpg, .png, .webp or .gif (default IMAGE-meme.jpg);"
                           " an animated IMAGE stays animated as .gif or .webp")
    make.add_argument("--top", help="top text (default: a caption for the mood)")
    make.add_argument("--bottom", help="bottom text (default: a caption for the mood)")
    # Listed here rather than read from memegen.render, so that --help and --version
    # do not pay for importing the imaging stack; a test keeps the list in step.
    make.add_argument("--style", default="classic",
                      help="classic (default), modern, poster or faces")
    make.add_argument("--seed", type=int, help="seed for a reproducible caption")
    make.add_argument("--watermark", metavar="TEXT",
                      help="small mark in a corner (default MEMEGEN_WATERMARK, else none)")
    _add_captions_option(make)
    make.set_defaults(handler=_make)

    analyze = commands.add_parser(
        "analyze", help="print faces and expressions as JSON Lines, one line per image"
    )
    analyze.add_argument("paths", type=Path, nargs="+", help="images or folders (walked)")
    analyze.add_argument("--whole-image", action="store_true",
                         help="skip detection: the whole image is one face")
    analyze.set_defaults(handler=_analyze)

    captions = commands.add_parser(
        "captions", help="list the captions, as 'MOOD<TAB>TOP | BOTTOM' lines or as JSON"
    )
    captions.add_argument("--expression", metavar="MOOD",
                          help="only this mood: an expression, noface, group or mixed")
    captions.add_argument("--json", action="store_true",
                          help='print {"MOOD": [{"top": ..., "bottom": ...}, ...]}')
    _add_captions_option(captions)
    captions.set_defaults(handler=_captions)

    try:
        from memegen.training.commands import add_parser as add_training_parser
    except ImportError:
        pass
    else:
        add_training_parser(commands)
    return parser


def _add_captions_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--captions", type=Path, metavar="DIR",
        help="folder of MOOD.txt caption files replacing those moods' bundled captions"
             " (default MEMEGEN_CAPTIONS_DIR, else only the bundled ones)",
    )


def _serve(args: argparse.Namespace) -> int:
    from memegen.captions import CaptionFileError
    from memegen.config import Settings
    from memegen.web import create_app
    from memegen.web.server import serve

    settings = Settings.from_env(host=args.host, port=args.port, captions_dir=args.captions)
    try:
        app = create_app(settings)
    except CaptionFileError as error:
        # A bad caption folder is the user's to fix; a traceback would bury the file and line.
        print(f"memegen: {error}", file=sys.stderr)
        return 2
    serve(app, settings.host, settings.port, settings.threads)
    return 0


def _captions(args: argparse.Namespace) -> int:
    """Print the captions MemeGen would pick from, so a writer can review or diff a bank."""
    from memegen.captions import CaptionBank
    from memegen.config import Settings

    try:
        bank = CaptionBank.load(Settings.from_env(captions_dir=args.captions).captions_dir)
        moods = bank.moods if args.expression is None else (args.expression,)
        listed = {mood: bank.captions(mood) for mood in moods}
    except ValueError as error:
        print(f"memegen: {error}", file=sys.stderr)
        return 2
    if args.json:
        document = {
            mood: [{"top": caption.top, "bottom": caption.bottom} for caption in captions]
            for mood, captions in listed.items()
        }
        print(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        for mood, captions in listed.items():
            for caption in captions:
                print(f"{mood}\t{caption.top} | {caption.bottom}")
    return 0


def _make(args: argparse.Namespace) -> int:
    from memegen.config import Settings
    from memegen.imaging import ANIMATED_FORMATS, ImageError
    from memegen.pipeline import Pipeline

    output = args.output or Path(f"{args.image.stem}-meme.jpg")
    fmt = OUTPUT_FORMATS.get(output.suffix.lower())
    if fmt is None:
        print(f"memegen: cannot write {output}: use .jpg, .png, .webp or .gif", file=sys.stderr)
        return 2
    try:
        data = args.image.read_bytes()
        settings = Settings.from_env(watermark=args.watermark, captions_dir=args.captions)
        meme = Pipeline(settings).make_meme(
            data,
            top=args.top,
            bottom=args.bottom,
            seed=args.seed,
            style=args.style,
            animate=fmt in ANIMATED_FORMATS,
        )
    except (OSError, ImageError, ValueError) as error:
        print(f"memegen: {args.image}: {_describe(error)}", file=sys.stderr)
        return 2
    output.write_bytes(meme.encode(fmt))
    faces = len(meme.analysis.faces)
    print(f"{output}  ({faces} face{'s' * (faces != 1)}, mood: {meme.mood})", file=sys.stderr)
    print(output)
    return 0


def _walk(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(
                child
                for child in path.rglob("*")
                if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            yield path


def _analyze(args: argparse.Namespace) -> int:
    from memegen.imaging import ImageError
    from memegen.pipeline import Pipeline

    pipeline = Pipeline()
    paths = list(_walk(args.paths))
    failures = 0
    for number, path in enumerate(paths, 1):
        try:
            analysis = pipeline.analyze(path.read_bytes(), whole_image=args.whole_image)
            record = {"path": str(path), **analysis.to_dict()}
        except (OSError, ImageError) as error:
            failures += 1
            record = {"path": str(path), "error": _describe(error)}
        print(json.dumps(record), flush=True)
        if number % 100 == 0 or number == len(paths):
            print(f"analyzed {number}/{len(paths)}", file=sys.stderr, flush=True)
    if failures:
        print(f"{failures} of {len(paths)} could not be read", file=sys.stderr)
    return 1 if failures else 0


def _describe(error: Exception) -> str:
    from memegen.imaging import ImageError

    if isinstance(error, ImageError):
        return error.message
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:
        # The reader went away (``memegen captions | head``): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
