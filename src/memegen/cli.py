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
from typing import NoReturn

from memegen import __version__
from memegen.config import whole_number
from memegen.errors import UserError
from memegen.files import write_whole

IMAGE_SUFFIXES = {
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff",
    ".heic", ".heif",
}
OUTPUT_FORMATS = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".webp": "webp", ".gif": "gif"}
# Spelled out rather than read from memegen.render, so that --help and --version do not
# pay for importing the imaging stack; tests/test_cli.py keeps it in step with render.STYLES.
STYLES = ("classic", "modern", "poster", "faces")


class _Parser(argparse.ArgumentParser):
    """Stops on a bad flag with one line, as on every other error here: argparse's usage
    block before it would bury the reason. Subcommands' parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def parse_known_args(
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Refuse what the innermost command does not know, in that command's name:
        argparse would leave it to the top parser, whose line names ``memegen``."""
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="memegen", description="Expression-aware meme generator.")
    parser.add_argument("--version", action="version", version=f"memegen {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the web page and the JSON API")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=whole_number, help="port to listen on (default 8000)")
    _add_captions_option(serve)
    serve.set_defaults(handler=_serve)

    make = commands.add_parser("make", help="turn one photo into a meme")
    make.add_argument("image", type=Path,
                      help="the photo: JPEG, HEIC, PNG, WebP, GIF, BMP or TIFF")
    make.add_argument("-o", "--output", type=Path,
                      help="output file; .jpg, .png, .webp or .gif (default IMAGE-meme.jpg in the "
                      "current folder);"
                           " an animated IMAGE stays animated as .gif or .webp")
    make.add_argument("--top", help="top text (default: a caption for the mood)")
    make.add_argument("--bottom", help="bottom text (default: a caption for the mood)")
    make.add_argument("--style", default="classic", choices=STYLES,
                      help="classic (default), modern, poster or faces")
    make.add_argument("--seed", type=_seed, help="seed for a reproducible caption (0 to 2^63-1)")
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


def _seed(raw: str) -> int:
    """A ``--seed`` in the range the API takes, so a seed means one caption everywhere."""
    from memegen.captions import SEED_LIMIT

    try:
        seed = whole_number(raw)
    except ValueError:
        seed = -1
    if not 0 <= seed < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number from 0 to 2^63-1")
    return seed


def _serve(args: argparse.Namespace) -> int:
    """Serve until interrupted. Settings, models and captions are loaded first (their
    ``UserError``s reach ``main``), then the meme folder is made and the address bound;
    each failure is one line and status 2. Stopped with requests unfinished: status 1."""
    from memegen.config import Settings
    from memegen.pipeline import Pipeline
    from memegen.web import create_app
    from memegen.web.server import serve

    settings = Settings.from_env(host=args.host, port=args.port, captions_dir=args.captions)
    pipeline = Pipeline(settings)
    try:
        app = create_app(settings, pipeline)
    except OSError as error:  # only the meme store touches the disk here
        print(f"memegen: cannot keep memes in {settings.storage_dir} (MEMEGEN_STORAGE_DIR): "
              f"{error.strerror}", file=sys.stderr)
        return 2
    try:
        finished = serve(app, settings.host, settings.port)
    except (OSError, ValueError) as error:
        # Raised while binding (in use, not ours, no such address; waitress's ValueError is
        # "Invalid host/port specified"): once serving, waitress handles errors itself.
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        print(f"memegen: cannot listen on {settings.host}:{settings.port}: {reason}",
              file=sys.stderr)
        return 2
    return 0 if finished else 1


def _captions(args: argparse.Namespace) -> int:
    """Print the captions MemeGen would pick from, so a writer can review or diff a bank.

    A caption folder that cannot be read raises its ``CaptionFileError`` and an unknown
    --expression a ``UserError``, which ``main`` reports; any other error is a bug.
    """
    from memegen.captions import CaptionBank
    from memegen.config import Settings

    settings = Settings.from_env(captions_dir=args.captions)
    bank = CaptionBank.load(settings.captions_dir)
    if args.expression is not None and args.expression not in bank.moods:
        raise UserError(
            f"unknown mood {args.expression!r}; expected one of: {', '.join(bank.moods)}"
        )
    moods = bank.moods if args.expression is None else (args.expression,)
    listed = {mood: bank.captions(mood) for mood in moods}
    if args.json:
        document = {
            mood: [{"top": caption.top, "bottom": caption.bottom} for caption in captions]
            for mood, captions in listed.items()
        }
        _print_out(json.dumps(document, ensure_ascii=False, indent=2))
    else:
        for mood, captions in listed.items():
            for caption in captions:
                _print_out(f"{mood}\t{caption.top} | {caption.bottom}")
    return 0


def _make(args: argparse.Namespace) -> int:
    """Every failure is one line and status 2: the output path and the caption's characters
    are checked before any work, settings, models and captions are loaded next (their
    ``UserError``s reach ``main``), and only then is the photo read, so that only its own
    errors name it."""
    from memegen.config import Settings
    from memegen.imaging import ANIMATED_FORMATS, ImageError
    from memegen.pipeline import Pipeline
    from memegen.typeset import UndrawableText, check_drawable

    output = args.output or Path(f"{args.image.stem}-meme.jpg")
    fmt = OUTPUT_FORMATS.get(output.suffix.lower())
    try:
        problem = (
            "it is a folder" if output.is_dir()
            else f"give the file a name before its extension, as in meme{output.name}"
            if fmt is None and output.name.lower() in OUTPUT_FORMATS
            else "use .jpg, .png, .webp or .gif" if fmt is None
            else f"there is no folder {output.parent}" if not output.parent.is_dir()
            else None
        )
    except OSError as error:  # a name too long, a folder we may not enter
        problem = error.strerror or str(error)
    if problem:
        print(f"memegen: cannot write {_shown(output)}: {problem}", file=sys.stderr)
        return 2
    for flag, text in (("--top", args.top), ("--bottom", args.bottom)):
        try:
            check_drawable(text or "")
        except UndrawableText as error:
            print(f"memegen: the {flag} text {error}", file=sys.stderr)
            return 2
    settings = Settings.from_env(watermark=args.watermark, captions_dir=args.captions)
    pipeline = Pipeline(settings)
    try:
        meme = pipeline.make_meme(
            _read_photo(args.image, settings.max_upload_bytes),
            top=args.top,
            bottom=args.bottom,
            seed=args.seed,
            style=args.style,
            animate=fmt in ANIMATED_FORMATS,
        )
    except (OSError, ImageError, FileTooLarge) as error:
        print(f"memegen: {_shown(args.image)}: {_describe(error)}", file=sys.stderr)
        return 2
    try:
        write_whole(output, meme.encode(fmt))
    except OSError as error:  # the checks above cannot foresee a full disk or a read-only one
        print(f"memegen: cannot write {_shown(output)}: {error.strerror or error}",
              file=sys.stderr)
        return 2
    faces = len(meme.analysis.faces)
    print(f"{_shown(output)}  ({faces} face{'s' * (faces != 1)}, mood: {meme.mood})",
          file=sys.stderr)
    _print_out(os.fsencode(output))  # its very bytes, for scripts
    return 0


def _walk(paths: list[Path]) -> Iterator[tuple[Path, OSError | None]]:
    """Each image to read, with the error that already stops it (a folder that cannot be
    listed), folders walked in sorted order."""
    for path in paths:
        try:
            is_folder = path.is_dir()
        except OSError as error:  # a name too long, a folder on the way we may not enter
            yield path, error
            continue
        if is_folder:
            yield from sorted(_images_in(path, set()), key=lambda item: item[0])
        else:
            yield path, None


def _images_in(folder: Path, seen: set[tuple[int, int]]) -> Iterator[tuple[Path, OSError | None]]:
    """The image files under ``folder``. Linked folders are followed, each folder once
    (a link to a parent does not loop); a link to nothing with an image's name is kept,
    so that its reading says what is wrong, as does a folder that cannot be listed and
    an entry that cannot be looked at (a link that loops, or into a folder we may not
    enter). Pipes and devices are left out: reading one might never end."""
    try:
        info = folder.stat()
        if (info.st_dev, info.st_ino) in seen:
            return
        seen.add((info.st_dev, info.st_ino))
        entries = list(os.scandir(folder))
    except OSError as error:
        yield folder, error
        return
    for entry in entries:
        path = Path(entry.path)
        try:
            is_folder = entry.is_dir()
            is_image = (not is_folder and path.suffix.lower() in IMAGE_SUFFIXES
                        and (entry.is_file() or not path.exists()))
        except OSError as error:
            yield path, error
            continue
        if is_folder:
            yield from _images_in(path, seen)
        elif is_image:
            yield path, None


def _analyze(args: argparse.Namespace) -> int:
    """One JSON line per image. Exit status 0 when every image was read, 1 when one could not
    be or none was found; a bad setting, manifest or caption folder raises a ``UserError``
    before any image is read."""
    from memegen.config import Settings
    from memegen.imaging import ImageError
    from memegen.pipeline import Pipeline

    settings = Settings.from_env()
    paths = list(_walk(args.paths))
    if not paths:
        print(f"memegen: no images in {', '.join(map(str, args.paths))} (looked for "
              f"{', '.join(sorted(IMAGE_SUFFIXES))})", file=sys.stderr)
        return 1
    pipeline = Pipeline(settings)
    failures = 0
    for number, (path, unreadable) in enumerate(paths, 1):
        try:
            if unreadable is not None:
                raise unreadable
            data = _read_photo(path, settings.max_upload_bytes)
            analysis = pipeline.analyze(data, whole_image=args.whole_image)
            record = {"path": _shown(path), **analysis.to_dict()}
        except (OSError, ImageError, FileTooLarge) as error:
            failures += 1
            record = {"path": _shown(path), "error": _describe(error)}
        _print_out(json.dumps(record))
        if number % 100 == 0 or number == len(paths):
            print(f"analyzed {number}/{len(paths)}", file=sys.stderr, flush=True)
    if failures:
        print(f"{failures} of {len(paths)} could not be read", file=sys.stderr)
    return 1 if failures else 0


def _print_out(line: str | bytes) -> None:
    """One line of the command's output on stdout. A stdout that is closed or full is the
    user's to fix, not a bug: it raises a ``UserError`` (a reader that went away still
    raises ``BrokenPipeError``, which ``main`` ends quietly)."""
    if sys.stdout is None:
        raise UserError("standard output is closed; nothing could be written")
    try:
        if isinstance(line, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(line + b"\n")
            sys.stdout.buffer.flush()
        else:
            print(line, flush=True)
    except BrokenPipeError:
        raise
    except OSError as error:
        raise UserError(f"cannot write to standard output: {error.strerror or error}") from None


def _shown(path: Path) -> str:
    """The path as valid Unicode text, one text for one path. A file name that is not UTF-8
    holds lone surrogates in Python, which strict JSON readers and UTF-8 terminals refuse;
    its stray bytes are written as ``\\xff``, and a backslash in the name as ``\\\\``, so
    that ``a\\xff.png`` cannot be two different files."""
    text = os.fsencode(path).decode("utf-8", "surrogateescape").replace("\\", "\\\\")
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


READ_CHUNK = 1 << 20


class FileTooLarge(Exception):
    """A file over ``MEMEGEN_MAX_UPLOAD_BYTES``, refused before it is read whole."""


def _read_photo(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, or :class:`FileTooLarge` without reading more than ``max_bytes + 1``:
    a huge file (or a device that never ends) is not read into memory just to be refused."""
    from memegen.imaging import describe_size, over_limit

    hint = "(set MEMEGEN_MAX_UPLOAD_BYTES to allow larger files)"
    size = path.stat().st_size
    if size > max_bytes:
        raise FileTooLarge(f"{over_limit(size, max_bytes).removesuffix('.')} {hint}.")
    chunks: list[bytes] = []
    total = 0
    with path.open("rb") as handle:
        # In chunks, not read(max_bytes + 1): Python sets aside the whole size asked for,
        # so a limit of many GB failed for any photo.
        while total <= max_bytes and (chunk := handle.read(min(READ_CHUNK, max_bytes + 1 - total))):
            chunks.append(chunk)
            total += len(chunk)
    data = b"".join(chunks)
    if len(data) > max_bytes:  # it grew, or it has no size to check (a pipe, a device)
        raise FileTooLarge(f"The file is larger than the {describe_size(max_bytes)} limit {hint}.")
    return data


def _describe(error: Exception) -> str:
    from memegen.imaging import DecompressionBomb, ImageError, ImageTooLarge

    if isinstance(error, ImageTooLarge) and not isinstance(error, DecompressionBomb):
        # The files reaching load_photo are within the byte limit (_read_photo), so this is
        # its pixel count; a picture that Pillow itself refuses as a decompression bomb is
        # over a limit no setting lifts.
        hint = "(set MEMEGEN_MAX_PIXELS to allow larger pictures)"
        return f"{error.message.removesuffix('.')} {hint}."
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
    except UserError as error:
        # A setting, manifest, caption folder or dataset the user can fix: the message names
        # it, and a traceback would only bury it.
        print(f"memegen: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: the lines already written are whole, and a file being written is removed.
        print("memegen: interrupted", file=sys.stderr)
        return 130
