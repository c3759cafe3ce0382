"""The command line, run as a real subprocess, against the design's contracts."""

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memegen import LABELS, cli
from memegen.render import STYLES

from sample_images import (
    BAD_INPUTS,
    animated_gif,
    astronaut_jpeg,
    avif,
    heic,
    jpeg_declaring_ninety_megapixels,
)


def memegen(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "memegen", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    (folder / "astronaut.jpg").write_bytes(astronaut_jpeg())
    (folder / "nested" / "again.jpg").write_bytes(astronaut_jpeg())
    (folder / "notes.txt").write_text("not a picture, and not walked")
    return folder


def test_analyze_prints_one_json_line_per_image_in_walked_folders(photos):
    result = memegen("analyze", photos)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["path"] for r in records) == sorted(
        [str(photos / "astronaut.jpg"), str(photos / "nested" / "again.jpg")]
    )
    face = records[0]["faces"][0]
    assert (records[0]["width"], records[0]["height"]) == (512, 512)
    assert set(face) == {"box", "score", "expression", "scores"}
    assert len(face["box"]) == 4 and set(face["scores"]) == set(LABELS)
    assert face["expression"] == "happy"


def test_analyze_follows_linked_folders_once_and_reports_links_to_nothing(photos, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "linked.jpg").write_bytes(astronaut_jpeg())
    (photos / "shared").symlink_to(elsewhere)
    (photos / "nested" / "back-up").symlink_to(photos)  # a loop, walked once
    (photos / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    os.mkfifo(photos / "pipe.jpg")  # left out: reading it would wait for ever
    result = memegen("analyze", photos)
    assert result.returncode == 1
    records = {record["path"]: record for record in map(json.loads, result.stdout.splitlines())}
    assert sorted(records) == [
        str(photos / name)
        for name in ("astronaut.jpg", "gone.jpg", "nested/again.jpg", "shared/linked.jpg")
    ]
    assert records[str(photos / "gone.jpg")]["error"] == "No such file or directory"
    assert records[str(photos / "shared" / "linked.jpg")]["faces"]


def test_analyze_writes_a_file_name_that_is_not_utf8_as_valid_unicode(tmp_path):
    """Python holds such a name with lone surrogates, which strict JSON readers refuse."""
    (Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.jpg"))).write_bytes(astronaut_jpeg())
    result = memegen("analyze", tmp_path)
    assert result.returncode == 0, result.stderr
    path = json.loads(result.stdout)["path"]
    assert path == f"{tmp_path}/caf\\xe9.jpg"
    path.encode("utf-8")  # no lone surrogate left


def test_analyze_writes_a_backslash_in_a_name_so_no_two_files_share_a_path(tmp_path):
    """A name holding a real backslash and "xe9" must not read as the name with byte E9."""
    (tmp_path / "caf\\xe9.jpg").write_bytes(astronaut_jpeg())
    (Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.jpg"))).write_bytes(astronaut_jpeg())
    result = memegen("analyze", tmp_path)
    paths = [json.loads(line)["path"] for line in result.stdout.splitlines()]
    assert sorted(paths) == [f"{tmp_path}/caf\\\\xe9.jpg", f"{tmp_path}/caf\\xe9.jpg"]


def test_analyze_reports_entries_it_cannot_look_at_and_goes_on(tmp_path):
    """A link in a loop, or a name too long for the system, used to stop the whole run
    with a traceback before any line was written."""
    (tmp_path / "photo.jpg").write_bytes(astronaut_jpeg())
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")
    too_long = tmp_path / ("x" * 300 + ".jpg")
    result = memegen("analyze", tmp_path, too_long)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    records = {json.loads(line)["path"]: json.loads(line) for line in result.stdout.splitlines()}
    assert records[str(tmp_path / "photo.jpg")]["faces"]
    assert "symbolic links" in records[str(tmp_path / "loop.jpg")]["error"]
    assert records[str(too_long)]["error"] == "File name too long"


def test_analyze_walks_jfif_files_as_jpegs(tmp_path):
    """Browsers and Windows save some JPEGs as .jfif."""
    (tmp_path / "saved.jfif").write_bytes(astronaut_jpeg())
    result = memegen("analyze", tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["faces"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_analyze_says_so_when_its_output_cannot_be_written(photos):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "memegen", "analyze", photos],
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "memegen: cannot write to standard output: No space left on device")


def test_analyze_with_stdout_closed_fails_rather_than_printing_nothing(photos):
    result = subprocess.run([sys.executable, "-m", "memegen", "analyze", photos],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            timeout=120, preexec_fn=lambda: os.close(1))
    assert result.returncode == 2
    assert "standard output is closed" in result.stderr


def test_analyze_walks_into_the_heic_files_of_a_folder_and_past_avif_ones(tmp_path):
    """Phones name them IMG_0001.HEIC; a Mac keeps them as .heic files."""
    (tmp_path / "IMG_0001.HEIC").write_bytes(heic())
    (tmp_path / "photo.avif").write_bytes(avif())
    result = memegen("analyze", tmp_path)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(record["path"]).name for record in records] == ["IMG_0001.HEIC"]
    assert records[0]["faces"][0]["expression"] == "happy"


def test_analyze_keeps_progress_off_stdout(photos):
    result = memegen("analyze", photos)
    assert "analyzed" in result.stderr
    for line in result.stdout.splitlines():
        json.loads(line)


def test_analyze_whole_image_reports_one_face_covering_the_picture(photos):
    result = memegen("analyze", "--whole-image", photos / "astronaut.jpg")
    record = json.loads(result.stdout)
    assert [face["box"] for face in record["faces"]] == [[0, 0, 512, 512]]


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_analyze_reports_a_bad_file_and_goes_on(tmp_path, name):
    make, _, _ = BAD_INPUTS[name]
    (tmp_path / "a_bad.png").write_bytes(make())
    (tmp_path / "b_good.jpg").write_bytes(astronaut_jpeg())
    result = memegen("analyze", tmp_path / "a_bad.png", tmp_path / "b_good.jpg")
    bad, good = (json.loads(line) for line in result.stdout.splitlines())
    assert set(bad) == {"path", "error"} and bad["error"]
    assert good["faces"]
    assert result.returncode == 1


def test_analyze_reports_a_missing_file(tmp_path):
    result = memegen("analyze", tmp_path / "missing.jpg")
    assert "error" in json.loads(result.stdout)


def test_make_writes_a_meme_with_the_given_text(tmp_path):
    (tmp_path / "in.jpg").write_bytes(astronaut_jpeg())
    result = memegen("make", tmp_path / "in.jpg", "-o", tmp_path / "out.png",
                     "--top", "hello", "--bottom", "world")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "out.png")
    with Image.open(tmp_path / "out.png") as meme:
        assert meme.format == "PNG" and meme.size == (512, 512)


def test_make_with_a_seed_is_reproducible(tmp_path):
    (tmp_path / "in.jpg").write_bytes(astronaut_jpeg())
    for name in ("one.jpg", "two.jpg"):
        result = memegen("make", tmp_path / "in.jpg", "-o", tmp_path / name, "--seed", 7)
        assert result.returncode == 0
    assert (tmp_path / "one.jpg").read_bytes() == (tmp_path / "two.jpg").read_bytes()


def test_make_to_a_bare_extension_asks_for_a_file_name(tmp_path):
    result = memegen("make", tmp_path / "in.jpg", "-o", tmp_path / ".png")
    assert result.returncode == 2
    assert "give the file a name before its extension, as in meme.png" in result.stderr


@pytest.mark.parametrize("seed", ["-5", str(2**63), "seven"])
def test_make_refuses_a_seed_the_api_would_refuse(tmp_path, seed):
    result = memegen("make", tmp_path / "in.jpg", "--seed", seed)
    assert result.returncode == 2
    assert "--seed" in result.stderr and "0 to 2^63-1" in result.stderr


def test_make_defaults_to_a_jpeg_named_after_the_input(tmp_path):
    (tmp_path / "in.jpg").write_bytes(astronaut_jpeg())
    assert memegen("make", "in.jpg", cwd=tmp_path).returncode == 0
    with Image.open(tmp_path / "in-meme.jpg") as meme:
        assert meme.format == "JPEG"


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_make_refuses_bad_input_clearly_and_writes_nothing(tmp_path, name):
    make, _, _ = BAD_INPUTS[name]
    (tmp_path / "bad.png").write_bytes(make())
    result = memegen("make", tmp_path / "bad.png", "-o", tmp_path / "out.jpg")
    assert result.returncode == 2
    assert result.stderr.startswith("memegen: ") and result.stdout == ""
    assert not (tmp_path / "out.jpg").exists()


def test_make_refuses_an_unknown_output_format(tmp_path):
    (tmp_path / "in.jpg").write_bytes(astronaut_jpeg())
    result = memegen("make", tmp_path / "in.jpg", "-o", tmp_path / "out.bmp")
    assert result.returncode == 2 and "use .jpg, .png, .webp or .gif" in result.stderr


def test_make_draws_the_style_asked_for(tmp_path):
    (tmp_path / "in.jpg").write_bytes(astronaut_jpeg())
    result = memegen("make", tmp_path / "in.jpg", "-o", tmp_path / "out.png",
                     "--top", "hello", "--bottom", "world", "--style", "modern")
    assert result.returncode == 0, result.stderr
    with Image.open(tmp_path / "out.png") as meme:
        width, height = meme.size
        assert height > width, "a caption band above the square photo"
        assert meme.convert("RGB").getpixel((2, 2)) == (255, 255, 255)


def test_make_refuses_an_unknown_style_naming_the_known_ones(tmp_path):
    (tmp_path / "in.jpg").write_bytes(astronaut_jpeg())
    result = memegen("make", tmp_path / "in.jpg", "-o", tmp_path / "out.png", "--style", "comic")
    assert result.returncode == 2
    assert all(style in result.stderr for style in STYLES)
    assert not (tmp_path / "out.png").exists()


def test_make_refuses_an_unknown_style_before_reading_the_photo(tmp_path):
    result = memegen("make", tmp_path / "missing.jpg", "--style", "comic")
    assert result.returncode == 2 and "invalid choice: 'comic'" in result.stderr
    assert result.stderr.count("\n") == 1, "one line, not argparse's usage block too"
    assert result.stderr.startswith("memegen make: ")
    assert result.stderr.endswith("(see memegen make --help)\n")
    assert "missing.jpg" not in result.stderr


def test_make_refuses_a_caption_its_fonts_cannot_draw_before_reading_the_photo(tmp_path):
    result = memegen("make", tmp_path / "missing.jpg", "--bottom", "你好")
    assert result.returncode == 2
    assert "the --bottom text uses characters" in result.stderr and "你 好" in result.stderr
    assert "missing.jpg" not in result.stderr


def test_make_offers_exactly_the_renderers_styles():
    assert cli.STYLES == STYLES


def test_make_help_lists_every_style():
    help_text = " ".join(memegen("make", "--help").stdout.split())
    assert all(style in help_text for style in STYLES)


def test_make_watermark_comes_from_the_flag_or_the_environment(tmp_path, monkeypatch):
    (tmp_path / "in.jpg").write_bytes(astronaut_jpeg())
    plain = ("make", tmp_path / "in.jpg", "--top", "a", "--bottom", "b")
    assert memegen(*plain, "-o", tmp_path / "plain.png").returncode == 0
    assert memegen(*plain, "-o", tmp_path / "flag.png", "--watermark", "MemeGen").returncode == 0
    monkeypatch.setenv("MEMEGEN_WATERMARK", "MemeGen")
    assert memegen(*plain, "-o", tmp_path / "env.png").returncode == 0
    images = {
        name: np.asarray(Image.open(tmp_path / f"{name}.png").convert("RGB"), dtype=np.int16)
        for name in ("plain", "flag", "env")
    }
    assert np.array_equal(images["flag"], images["env"])
    rows, columns = np.nonzero(np.any(images["flag"] != images["plain"], axis=2))
    assert rows.size and rows.min() > 512 * 0.85 and columns.min() > 512 * 0.6


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_make_keeps_an_animation_animated(tmp_path, suffix):
    (tmp_path / "in.gif").write_bytes(animated_gif())
    output = tmp_path / f"out{suffix}"
    result = memegen("make", tmp_path / "in.gif", "-o", output, "--top", "spin")
    assert result.returncode == 0, result.stderr
    with Image.open(output) as meme:
        assert meme.n_frames == 3


def captions_folder(path, **moods):
    path.mkdir()
    for mood, line in moods.items():
        (path / f"{mood}.txt").write_text(f"{line}\n", encoding="utf-8")
    return path


def test_captions_lists_every_mood_as_tab_separated_lines():
    result = memegen("captions")
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert all(len(parts) == 2 and parts[1].count("|") == 1 for parts in lines)
    assert {mood for mood, _ in lines} == {*LABELS, "noface", "group", "mixed"}


def test_captions_json_for_one_expression_holds_only_that_mood():
    result = memegen("captions", "--expression", "mixed", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document) == ["mixed"] and len(document["mixed"]) >= 30
    assert all(set(caption) == {"top", "bottom"} for caption in document["mixed"])


def test_captions_refuses_an_unknown_mood_naming_the_known_ones():
    result = memegen("captions", "--expression", "excited")
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown mood 'excited'" in result.stderr and "mixed" in result.stderr


def test_captions_lets_an_error_that_is_no_user_mistake_keep_its_traceback(monkeypatch):
    from memegen.captions import CaptionBank

    def bug(cls, directory=None):
        raise ValueError("a bug while reading the bundled captions")

    monkeypatch.setattr(CaptionBank, "load", classmethod(bug))
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["captions"])


def test_captions_folder_flag_overrides_the_environment(tmp_path, monkeypatch):
    flag = captions_folder(tmp_path / "flag", happy="From the | flag")
    monkeypatch.setenv("MEMEGEN_CAPTIONS_DIR", str(captions_folder(tmp_path / "env", happy="x|y")))
    result = memegen("captions", "--expression", "happy", "--captions", flag)
    assert result.stdout == "happy\tFrom the | flag\n"
    from_env = memegen("captions", "--expression", "happy")
    assert from_env.stdout == "happy\tx | y\n"


def test_make_picks_from_the_captions_folder_given(tmp_path, monkeypatch):
    (tmp_path / "in.jpg").write_bytes(astronaut_jpeg())
    folder = captions_folder(tmp_path / "mine", happy="Only | this one")
    monkeypatch.setenv("MEMEGEN_CAPTIONS_DIR", str(captions_folder(tmp_path / "env", happy="a|b")))
    picked = memegen("make", tmp_path / "in.jpg", "-o", tmp_path / "picked.png",
                     "--captions", folder)
    assert picked.returncode == 0, picked.stderr
    typed = memegen("make", tmp_path / "in.jpg", "-o", tmp_path / "typed.png",
                    "--top", "Only", "--bottom", "this one")
    assert typed.returncode == 0, typed.stderr
    assert (tmp_path / "picked.png").read_bytes() == (tmp_path / "typed.png").read_bytes()


@pytest.mark.parametrize("command", [("captions",), ("serve", "--port", "0")])
def test_a_bad_captions_folder_is_refused_with_its_file_and_line(tmp_path, command):
    folder = captions_folder(tmp_path / "bad", sad="no bar on this line")
    result = memegen(*command, "--captions", folder)
    assert result.returncode == 2
    assert f"{folder / 'sad.txt'}:1:" in result.stderr and "Traceback" not in result.stderr


def test_captions_piped_into_a_reader_that_stops_early_ends_quietly():
    listing = subprocess.Popen(
        [sys.executable, "-m", "memegen", "captions"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    listing.stdout.close()
    _, errors = listing.communicate(timeout=60)
    assert b"Traceback" not in errors


# --- Mistakes in settings, files and flags: one line, status 2, no traceback --------------


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "in.jpg"
    path.write_bytes(astronaut_jpeg())
    return path


def command_line(command, photo):
    """A command that loads the settings and the models, run on ``photo`` where it takes one."""
    return {
        "analyze": ("analyze", photo),
        "make": ("make", photo, "-o", photo.with_name("out.jpg")),
        "serve": ("serve", "--port", "0"),
    }[command]


def assert_refused(result, message):
    """``message`` as the one line on stderr, status 2, nothing on stdout."""
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("memegen: ") and result.stderr.count("\n") == 1
    assert message in result.stderr, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["analyze", "make", "serve"])
def test_a_setting_that_is_not_a_number_is_named_and_the_photo_is_not(
    photo, monkeypatch, command
):
    monkeypatch.setenv("MEMEGEN_MAX_PIXELS", "abc")
    result = memegen(*command_line(command, photo))
    assert_refused(result, "MEMEGEN_MAX_PIXELS='abc' is not a valid int")
    assert str(photo) not in result.stderr


@pytest.mark.parametrize(("variable", "value", "command"), [
    ("MEMEGEN_PORT", "70000", "serve"),
    ("MEMEGEN_THREADS", "0", "serve"),
    ("MEMEGEN_DECODE_MAX_SIDE", "0", "analyze"),
    ("MEMEGEN_OUTPUT_MAX_SIDE", "0", "make"),
    ("MEMEGEN_MAX_UPLOAD_BYTES", "-1", "analyze"),
])
def test_a_setting_out_of_range_is_refused_naming_its_variable(
    photo, monkeypatch, variable, value, command
):
    monkeypatch.setenv(variable, value)
    # --port would override MEMEGEN_PORT, and a flag wins without the variable being read.
    args = ("serve",) if variable == "MEMEGEN_PORT" else command_line(command, photo)
    assert_refused(memegen(*args), f"{variable} must be")


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_serve_refuses_a_port_flag_out_of_range(port):
    assert_refused(memegen("serve", "--port", port), f"port must be from 0 to 65535, not {port}")


@pytest.mark.parametrize(("args", "refusal"), [
    (("serve", "--port", "8_000"),
     "memegen serve: argument --port: '8_000' is not a whole number in plain digits"),
    (("make", "photo.jpg", "--seed", "+7"), "memegen make: argument --seed: '+7' is not a whole"),
    (("train", "fit", "--data", "faces", "--epochs", "\u0663"),
     "memegen train fit: argument --epochs: '\u0663' is not a whole number"),
    (("train", "search", "--data", "faces", "--trials", "1_0"),
     "memegen train search: argument --trials: '1_0' is not a whole number"),
    (("train", "search", "--data", "faces", "--widths", "16,+24"),
     "memegen train search: argument --widths: '16,+24': widths are whole numbers"),
])
def test_a_number_flag_takes_plain_decimal_digits_as_settings_do(args, refusal):
    result = memegen(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(refusal) and result.stderr.count("\n") == 1, result.stderr


def test_serve_reports_a_host_it_cannot_listen_on():
    assert_refused(memegen("serve", "--host", "256.1.1.1", "--port", "0"),
                   "cannot listen on 256.1.1.1:0")


def test_serve_reports_a_port_already_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = memegen("serve", "--host", "127.0.0.1", "--port", port)
    assert_refused(result, f"cannot listen on 127.0.0.1:{port}: Address already in use")


def test_serve_reports_a_storage_folder_under_a_file(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("MEMEGEN_STORAGE_DIR", str(tmp_path / "a-file" / "memes"))
    assert_refused(memegen("serve", "--port", "0"), "MEMEGEN_STORAGE_DIR): Not a directory")


def test_serve_refuses_a_storage_folder_that_takes_no_files(monkeypatch):
    """/proc/self exists and takes no new files, for root too, as a read-only disk would:
    the server used to start, say it was healthy, and answer every meme with a 500."""
    monkeypatch.setenv("MEMEGEN_STORAGE_DIR", "/proc/self")
    assert_refused(memegen("serve", "--port", "0"),
                   "cannot keep memes in /proc/self (MEMEGEN_STORAGE_DIR): ")


@pytest.mark.parametrize("command", ["analyze", "make", "serve"])
def test_a_bad_manifest_is_named_by_every_command_and_the_photo_is_not(
    photo, tmp_path, monkeypatch, command
):
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{not json")
    monkeypatch.setenv("MEMEGEN_MANIFEST", str(manifest))
    result = memegen(*command_line(command, photo))
    assert_refused(result, f"{manifest}: the model manifest is not valid JSON")
    assert str(photo) not in result.stderr


def test_make_refuses_an_output_without_its_folder_before_reading_the_photo(tmp_path):
    output = tmp_path / "nowhere" / "out.jpg"
    result = memegen("make", tmp_path / "missing.jpg", "-o", output)
    assert_refused(result, f"cannot write {output}: there is no folder {output.parent}")


def test_make_refuses_an_output_that_is_a_folder(photo, tmp_path):
    (tmp_path / "taken.jpg").mkdir()
    assert_refused(memegen("make", photo, "-o", tmp_path / "taken.jpg"), "it is a folder")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_make_reports_a_failed_write_in_one_line(photo, tmp_path):
    (tmp_path / "full.jpg").symlink_to("/dev/full")  # every write fails: no space left
    result = memegen("make", photo, "-o", tmp_path / "full.jpg")
    assert_refused(result, f"cannot write {tmp_path / 'full.jpg'}: No space left on device")


def test_make_past_a_file_size_limit_keeps_the_old_file_and_leaves_no_part(photo, tmp_path):
    """The meme is written beside its name and renamed into place: a write cut short used
    to leave a truncated file, or destroy the photo when -o named it."""
    kept = photo.read_bytes()

    def twenty_kb_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    result = subprocess.run(
        [sys.executable, "-m", "memegen", "make", photo, "-o", photo, "--top", "x"],
        capture_output=True, text=True, timeout=120, preexec_fn=twenty_kb_files,
    )
    assert_refused(result, f"cannot write {photo}: File too large")
    assert photo.read_bytes() == kept
    assert sorted(path.name for path in photo.parent.iterdir()) == [photo.name]


def test_make_replaces_an_existing_output_whole_and_keeps_a_link_a_link(photo, tmp_path):
    (tmp_path / "real.jpg").write_bytes(b"an older meme")
    (tmp_path / "real.jpg").chmod(0o640)
    (tmp_path / "link.jpg").symlink_to("real.jpg")
    result = memegen("make", photo, "-o", tmp_path / "link.jpg")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "link.jpg").is_symlink()
    assert Image.open(tmp_path / "real.jpg").format == "JPEG"
    assert oct((tmp_path / "real.jpg").stat().st_mode & 0o777) == "0o640", "its mode is kept"
    assert memegen("make", photo, "-o", tmp_path / "new.jpg").returncode == 0
    mask = os.umask(0)
    os.umask(mask)
    assert oct((tmp_path / "new.jpg").stat().st_mode & 0o777) == oct(0o666 & ~mask)


def memegen_without_root_powers(*args):
    """``memegen`` without root's power to enter any folder (``setpriv`` drops it), so that
    permissions stop it here as they would stop anyone else."""
    prefix = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to drop root's powers")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run([*prefix, sys.executable, "-m", "memegen", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_make_refuses_an_output_name_too_long_in_one_line(photo, tmp_path):
    output = tmp_path / ("x" * 300 + ".jpg")
    assert_refused(memegen("make", photo, "-o", output),
                   f"cannot write {output}: File name too long")


def test_make_refuses_an_output_in_a_folder_it_may_not_enter_in_one_line(photo, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        assert_refused(memegen_without_root_powers("make", photo, "-o", locked / "out.jpg"),
                       f"cannot write {locked / 'out.jpg'}: Permission denied")
    finally:
        locked.chmod(0o755)


def test_make_prints_the_bytes_of_an_output_name_that_is_not_utf8(photo, tmp_path):
    """Under a UTF-8 locale such a name used to end ``make`` with UnicodeEncodeError."""
    output = os.fsencode(tmp_path) + b"/meme\xff.png"
    result = subprocess.run([sys.executable, "-m", "memegen", "make", photo, "-o", output],
                            capture_output=True, timeout=120,
                            env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr
    assert result.stdout == output + b"\n"
    assert b"meme\\xff.png" in result.stderr
    assert Path(os.fsdecode(output)).is_file()


@pytest.mark.parametrize("extra", [("--bogus",), ("second.jpg",)])
def test_an_unknown_flag_is_refused_by_the_command_it_was_given_to(photo, extra):
    result = memegen("make", photo, *extra)
    assert result.returncode == 2
    assert result.stderr == (f"memegen make: unrecognized arguments: {' '.join(extra)} "
                             "(see memegen make --help)\n")


@pytest.mark.parametrize("caption_file", ["link to nothing", "folder"])
def test_a_caption_file_that_cannot_be_read_is_refused_in_one_line(tmp_path, caption_file):
    folder = tmp_path / "captions"
    folder.mkdir()
    if caption_file == "folder":
        (folder / "sad.txt").mkdir()
    else:
        (folder / "sad.txt").symlink_to(tmp_path / "gone.txt")
    result = memegen("captions", "--captions", folder)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"memegen: {folder / 'sad.txt'}: ")


def test_make_names_the_setting_that_lifts_the_upload_limit(tmp_path):
    big = tmp_path / "big.png"
    with big.open("wb") as handle:
        handle.truncate(27_900_000)  # 26.6 MB, sparse: refused before anything reads it
    result = memegen("make", big, "-o", tmp_path / "out.jpg")
    assert_refused(result, "The file is 26.6 MB; the limit is 25 MB (set MEMEGEN_MAX_UPLOAD_BYTES")


def test_make_names_no_setting_for_a_picture_over_pillows_own_limit(tmp_path):
    (tmp_path / "bomb.jpg").write_bytes(jpeg_declaring_ninety_megapixels())
    result = memegen("make", tmp_path / "bomb.jpg", "-o", tmp_path / "out.jpg")
    assert_refused(result, "The image has far too many pixels: more than 89.5 megapixels.")
    assert "MEMEGEN_" not in result.stderr and "Warning" not in result.stderr


@pytest.mark.parametrize(("variable", "value", "other"), [
    ("MEMEGEN_MAX_UPLOAD_BYTES", "1000", "MEMEGEN_MAX_PIXELS"),
    ("MEMEGEN_MAX_PIXELS", "100000", "MEMEGEN_MAX_UPLOAD_BYTES"),
])
def test_analyze_names_the_one_setting_that_lifts_the_limit_met(
    photo, monkeypatch, variable, value, other
):
    monkeypatch.setenv(variable, value)
    error = json.loads(memegen("analyze", photo).stdout)["error"]
    assert f"set {variable}" in error and other not in error


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_analyze_stops_reading_a_file_at_the_upload_limit(monkeypatch):
    monkeypatch.setenv("MEMEGEN_MAX_UPLOAD_BYTES", "1000")
    result = memegen("analyze", "/dev/zero")  # endless, and its size reads as 0
    assert json.loads(result.stdout)["error"].startswith("The file is larger than the 1 KB limit")


@pytest.mark.parametrize("limit", ["1000000000000", "99999999999999999999999999"])
def test_a_limit_far_above_the_file_reads_the_photo(tmp_path, monkeypatch, limit):
    """Reading asked Python for the whole limit at once: MemoryError or OverflowError."""
    monkeypatch.setenv("MEMEGEN_MAX_UPLOAD_BYTES", limit)
    (tmp_path / "in.jpg").write_bytes(astronaut_jpeg())
    result = memegen("analyze", tmp_path / "in.jpg")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["faces"]


def test_a_photo_from_a_pipe_is_read_whole():
    """A stream has no size to check, and is read in chunks up to the limit."""
    result = subprocess.run(
        [sys.executable, "-m", "memegen", "analyze", "/dev/stdin"],
        input=astronaut_jpeg(), capture_output=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["faces"][0]["expression"] == "happy"


def test_analyze_says_so_when_no_image_is_found(tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture")
    result = memegen("analyze", tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(f"memegen: no images in {tmp_path}")
