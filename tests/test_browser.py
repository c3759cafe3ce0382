"""The page in a real Chromium, against the real server (``python -m memegen serve``).

Upload a photo, see the meme and the face's expression, edit the caption and watch the
meme redraw, re-roll, download PNG and JPEG, see a friendly error for a bad file. Also
leaves screenshots (desktop and phone) in /tmp for a human to look at.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path

import playwright.sync_api as playwright_api
import pytest
from PIL import Image

from live_server import live_server
from sample_images import (
    DATA,
    animated_gif,
    heic,
    jpeg_cut_after_its_header,
    not_an_image,
    still_gif,
)

Browser = playwright_api.Browser
Page = playwright_api.Page
expect = playwright_api.expect

pytestmark = pytest.mark.browser

ASTRONAUT = DATA / "astronaut.jpg"
SYSTEM_CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MEME_TIMEOUT_MS = 30_000
DESKTOP_SHOT = Path("/tmp/memegen_page.png")
PHONE_SHOT = Path("/tmp/memegen_page_phone.png")
STYLES_SHOT = Path("/tmp/memegen_page_styles.png")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real server in a subprocess, on a free port, with its own storage directory."""
    with live_server(tmp_path_factory.mktemp("browser-server")) as (_, base):
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium where present, else Playwright's own (``make test`` installs it).

    A browser that will not start fails the tests rather than skipping them, so a
    CI machine without Chromium cannot pass silently.
    """
    options: dict = {"headless": True, "args": CHROMIUM_ARGS}
    if SYSTEM_CHROMIUM.exists():
        options["executable_path"] = str(SYSTEM_CHROMIUM)
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(**options)
        yield browser
        browser.close()


def open_page(browser: Browser, base: str, **context_options: object) -> tuple[Page, list[str]]:
    """A fresh page on the app and a list that collects script errors and foreign requests."""
    context = browser.new_context(accept_downloads=True, **context_options)
    page = context.new_page()
    problems: list[str] = []

    def on_console(message: playwright_api.ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    def on_request(request: playwright_api.Request) -> None:
        if not request.url.startswith((base, "data:", "blob:")):
            problems.append(f"foreign request: {request.url}")

    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", on_console)
    page.on("request", on_request)
    page.goto(base)
    return page, problems


def upload_astronaut(page: Page) -> str:
    """Pick the astronaut and wait for her meme; returns the meme's URL."""
    page.get_by_test_id("file-input").set_input_files(ASTRONAUT)
    meme = page.get_by_test_id("meme-image")
    expect(meme).to_have_attribute("src", re.compile(r"/api/v1/memes/"), timeout=MEME_TIMEOUT_MS)
    expect(page.get_by_test_id("stage")).to_have_attribute("aria-busy", "false")
    return meme.get_attribute("src") or ""


def test_make_edit_reroll_and_download(server: str, browser: Browser, tmp_path: Path) -> None:
    page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
    first_src = upload_astronaut(page)

    expect(page.get_by_test_id("face-expression").first).to_have_text("happy")
    expect(page.get_by_text("happy", exact=True).first).to_be_visible()
    expect(page.get_by_test_id("face-box").first).to_be_visible()
    expect(page.get_by_test_id("face-card").first.locator(".bar-row")).to_have_count(7)
    top = page.get_by_test_id("top-input")
    expect(top).to_be_enabled()

    # Editing the text re-renders (debounced) from the kept file: a new meme URL.
    top.fill("when the tests pass")
    meme = page.get_by_test_id("meme-image")
    expect(meme).not_to_have_attribute("src", first_src, timeout=MEME_TIMEOUT_MS)
    expect(meme).to_have_attribute("alt", re.compile("when the tests pass"))
    expect(page.get_by_test_id("stage")).to_have_attribute("aria-busy", "false")
    edited_src = meme.get_attribute("src")

    # Re-roll asks for a new caption: new URL, and the fields hold the new caption.
    page.get_by_test_id("reroll-button").click()
    expect(meme).not_to_have_attribute("src", edited_src or "", timeout=MEME_TIMEOUT_MS)
    expect(page.get_by_test_id("stage")).to_have_attribute("aria-busy", "false")
    expect(top).not_to_have_value("when the tests pass")

    shown = meme.evaluate("image => [image.naturalWidth, image.naturalHeight]")
    assert shown[0] > 0 and shown[1] > 0

    for testid, magic, fmt in (
        ("download-png", b"\x89PNG\r\n\x1a\n", "PNG"),
        ("download-jpeg", b"\xff\xd8\xff", "JPEG"),
        ("download-webp", b"RIFF", "WEBP"),
    ):
        with page.expect_download() as download_info:
            page.get_by_test_id(testid).click()
        download = download_info.value
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        data = saved.read_bytes()
        assert data.startswith(magic), testid
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == fmt
            assert list(image.size) == shown, "the download is the meme on screen"

    expect(page.get_by_test_id("error")).to_be_empty()
    page.screenshot(path=str(DESKTOP_SHOT), full_page=True)
    assert not problems, problems


def test_reroll_sends_the_captions_already_shown_and_gets_a_new_one(
    server: str, browser: Browser
) -> None:
    page, problems = open_page(browser, server)
    upload_astronaut(page)
    meme = page.get_by_test_id("meme-image")
    top, bottom = page.get_by_test_id("top-input"), page.get_by_test_id("bottom-input")
    # Chromium does not hand Playwright a multipart body that holds a file, so the page's
    # own fetch notes the "recent" parts it sends.
    page.evaluate(
        """() => {
            const send = window.fetch;
            window.fetch = (url, options) => {
                window.sentRecent = options.body.getAll("recent");
                return send(url, options);
            };
        }"""
    )
    shown = [f"{top.input_value()} | {bottom.input_value()}"]
    for _ in range(3):
        before = meme.get_attribute("src") or ""
        page.get_by_test_id("reroll-button").click()
        assert page.evaluate("() => window.sentRecent") == shown
        expect(meme).not_to_have_attribute("src", before, timeout=MEME_TIMEOUT_MS)
        expect(page.get_by_test_id("stage")).to_have_attribute("aria-busy", "false")
        caption = f"{top.input_value()} | {bottom.input_value()}"
        assert caption not in shown
        shown.append(caption)
    assert not problems, problems


def test_picking_a_style_redraws_the_meme_keeping_the_caption(
    server: str, browser: Browser
) -> None:
    page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
    first_src = upload_astronaut(page)
    assert page.locator(".face-tag").first.inner_text() == "1 · happy"
    classic = page.get_by_test_id("style-classic")
    expect(classic).to_be_checked()
    expect(classic).to_be_enabled()
    top = page.get_by_test_id("top-input")
    caption = top.input_value()
    meme = page.get_by_test_id("meme-image")

    page.get_by_test_id("style-poster").check()
    expect(meme).not_to_have_attribute("src", first_src, timeout=MEME_TIMEOUT_MS)
    expect(page.get_by_test_id("stage")).to_have_attribute("aria-busy", "false")
    expect(top).to_have_value(caption)
    width, height = meme.evaluate("image => [image.naturalWidth, image.naturalHeight]")
    assert height > width, "the poster adds a frame and a title under the square photo"
    # The face box is drawn over the framed photo, not over the frame's corner.
    face = page.get_by_test_id("face-box").first.bounding_box()
    shown = meme.bounding_box()
    assert face and shown
    assert face["x"] > shown["x"] + shown["width"] * 0.1
    assert face["y"] > shown["y"] + shown["height"] * 0.05

    # Every change of style redraws.
    poster_src = meme.get_attribute("src") or ""
    page.get_by_test_id("style-modern").check()
    expect(meme).not_to_have_attribute("src", poster_src, timeout=MEME_TIMEOUT_MS)
    expect(page.get_by_test_id("stage")).to_have_attribute("aria-busy", "false")
    expect(page.get_by_test_id("style-modern")).to_be_checked()

    # A caption in Cyrillic and Devanagari goes through the page and back as typed.
    modern_src = meme.get_attribute("src") or ""
    top.fill("Привет, नमस्ते")
    expect(meme).not_to_have_attribute("src", modern_src, timeout=MEME_TIMEOUT_MS)
    expect(meme).to_have_attribute("alt", re.compile("Привет, नमस्ते"))
    expect(page.get_by_test_id("error")).to_be_empty()
    page.screenshot(path=str(STYLES_SHOT), full_page=True)
    assert not problems, problems


def test_an_animated_gif_becomes_an_animated_meme_to_download(
    server: str, browser: Browser, tmp_path: Path
) -> None:
    page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
    expect(page.get_by_test_id("download-gif")).to_be_hidden()
    page.get_by_test_id("file-input").set_input_files(
        {"name": "spin.gif", "mimeType": "image/gif", "buffer": animated_gif()}
    )
    meme = page.get_by_test_id("meme-image")
    expect(meme).to_have_attribute("src", re.compile(r"/api/v1/memes/.+\.gif$"),
                                   timeout=MEME_TIMEOUT_MS)
    link = page.get_by_test_id("download-gif")
    expect(link).to_be_visible()
    with page.expect_download() as download_info:
        link.click()
    saved = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(saved)
    with Image.open(saved) as image:
        assert image.format == "GIF" and image.n_frames == 3

    # A still GIF next: it comes back as lossless PNG, with no GIF to offer.
    page.get_by_test_id("file-input").set_input_files(
        {"name": "still.gif", "mimeType": "image/gif", "buffer": still_gif()}
    )
    expect(meme).to_have_attribute("src", re.compile(r"/api/v1/memes/.+\.png$"),
                                   timeout=MEME_TIMEOUT_MS)
    expect(link).to_be_hidden()
    assert not problems, problems


def test_phone_layout_is_one_column(server: str, browser: Browser) -> None:
    page, problems = open_page(
        browser,
        server,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
    )
    upload_astronaut(page)
    expect(page.get_by_test_id("face-expression").first).to_have_text("happy")
    # Tags of neighbouring faces would collide at this width: they show the number only.
    assert page.locator(".face-tag").first.inner_text() == "1"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "nothing sticks out sideways on a phone"
    upload = page.get_by_test_id("dropzone").bounding_box()
    meme = page.get_by_test_id("meme-image").bounding_box()
    assert upload and meme
    assert meme["y"] > upload["y"] + upload["height"], "stacked, not side by side"
    cramped = page.eval_on_selector_all(
        ".downloads .button:not([hidden])",
        "buttons => buttons.filter(b => b.scrollWidth > b.clientWidth).map(b => b.id)",
    )
    assert cramped == [], "every download button holds its label"
    page.screenshot(path=str(PHONE_SHOT), full_page=True)
    assert not problems, problems


def test_bad_file_shows_a_friendly_error(server: str, browser: Browser) -> None:
    page, _ = open_page(browser, server, viewport={"width": 1280, "height": 900})
    page.get_by_test_id("file-input").set_input_files(
        {"name": "holiday.jpg", "mimeType": "image/jpeg", "buffer": not_an_image()}
    )
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("not an image", timeout=MEME_TIMEOUT_MS)
    expect(page.get_by_test_id("stage")).to_have_attribute("aria-busy", "false")
    # The page still works after the error.
    upload_astronaut(page)
    expect(alert).to_be_empty()


def test_a_heic_the_browser_cannot_preview_still_becomes_a_meme(
    server: str, browser: Browser
) -> None:
    """Chromium cannot show a HEIC: the page hides its preview, sends it, shows the meme."""
    page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
    page.get_by_test_id("file-input").set_input_files(
        {"name": "IMG_0001.HEIC", "mimeType": "image/heic", "buffer": heic()}
    )
    meme = page.get_by_test_id("meme-image")
    expect(meme).to_have_attribute("src", re.compile(r"/api/v1/memes/"), timeout=MEME_TIMEOUT_MS)
    expect(page.get_by_test_id("stage")).to_have_attribute("aria-busy", "false")
    expect(page.get_by_test_id("face-expression").first).to_have_text("happy")
    expect(page.get_by_test_id("dropzone")).to_contain_text("IMG_0001.HEIC")
    assert meme.evaluate("image => image.naturalWidth") > 0
    thumb = page.locator("#thumb")
    assert thumb.evaluate("image => image.hidden || image.naturalWidth > 0"), "no broken icon"
    expect(page.get_by_role("alert")).to_be_empty()
    assert not problems, problems


def test_a_photo_the_server_refuses_keeps_the_meme_made_before_it(
    server: str, browser: Browser
) -> None:
    page, _ = open_page(browser, server, viewport={"width": 1280, "height": 900})
    src = upload_astronaut(page)
    top = page.get_by_test_id("top-input")
    caption = top.input_value()
    page.get_by_test_id("file-input").set_input_files(
        {"name": "cut.jpg", "mimeType": "image/jpeg", "buffer": jpeg_cut_after_its_header()}
    )
    expect(page.get_by_role("alert")).to_contain_text("damaged", timeout=MEME_TIMEOUT_MS)
    expect(page.get_by_test_id("stage")).to_have_attribute("aria-busy", "false")
    expect(page.get_by_test_id("meme-image")).to_have_attribute("src", src)
    expect(top).to_have_value(caption)
    expect(top).to_be_enabled()
    expect(page.get_by_test_id("download-png")).not_to_have_attribute("aria-disabled", "true")
    expect(page.get_by_test_id("dropzone")).to_contain_text("astronaut.jpg")
    # Edits go on with the photo the meme was made from.
    top.fill("Still here")
    top.press("Enter")
    expect(page.get_by_test_id("meme-image")).to_have_attribute(
        "alt", re.compile("Still here"), timeout=MEME_TIMEOUT_MS
    )
    expect(page.get_by_role("alert")).to_be_empty()


def test_nothing_can_be_edited_or_downloaded_while_the_meme_is_about_to_change(
    server: str, browser: Browser
) -> None:
    page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
    src = upload_astronaut(page)
    top = page.get_by_test_id("top-input")
    download = page.get_by_test_id("download-png")

    # Typing makes the meme on screen stale: no download until it is redrawn.
    top.fill("Fresh words")
    expect(download).to_have_attribute("aria-disabled", "true")
    meme = page.get_by_test_id("meme-image")
    expect(meme).not_to_have_attribute("src", src, timeout=MEME_TIMEOUT_MS)
    expect(download).not_to_have_attribute("aria-disabled", "true")

    # While a new photo is read, its caption is not known yet: the fields wait for it.
    held: list[playwright_api.Route] = []

    def hold(route: playwright_api.Route) -> None:
        held.append(route)

    page.route("**/api/v1/memes", hold)
    page.get_by_test_id("file-input").set_input_files(
        {"name": "still.gif", "mimeType": "image/gif", "buffer": still_gif()}
    )
    expect(top).to_be_disabled()
    expect(page.get_by_test_id("reroll-button")).to_be_disabled()
    expect(download).to_have_attribute("aria-disabled", "true")
    assert len(held) == 1
    held[0].continue_()
    page.unroute("**/api/v1/memes")
    expect(meme).to_have_attribute("src", re.compile(r"\.png$"), timeout=MEME_TIMEOUT_MS)
    expect(top).to_be_enabled()
    expect(top).not_to_have_value("Fresh words")
    assert not problems, problems


def test_keyboard_reaches_the_controls(server: str, browser: Browser) -> None:
    page, _ = open_page(browser, server, viewport={"width": 1280, "height": 900})
    reached = set()
    for _ in range(8):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("document.activeElement.dataset.testid || ''"))
    assert "choose-button" in reached


def test_drop_and_paste_pick_a_photo(server: str, browser: Browser) -> None:
    page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
    make_transfer = """async (b64) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "astronaut.jpg", { type: "image/jpeg" }));
        return transfer;
    }"""
    photo = base64.b64encode(ASTRONAUT.read_bytes()).decode()
    meme = page.get_by_test_id("meme-image")

    transfer = page.evaluate_handle(make_transfer, photo)
    page.get_by_test_id("dropzone").dispatch_event("drop", {"dataTransfer": transfer})
    expect(meme).to_have_attribute("src", re.compile(r"/api/v1/memes/"), timeout=MEME_TIMEOUT_MS)
    dropped_src = meme.get_attribute("src")

    transfer = page.evaluate_handle(make_transfer, photo)
    page.evaluate(
        "(transfer) => document.dispatchEvent("
        "new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true }))",
        transfer,
    )
    expect(meme).not_to_have_attribute("src", dropped_src or "", timeout=MEME_TIMEOUT_MS)
    expect(meme).to_have_attribute("src", re.compile(r"/api/v1/memes/"))
    assert not problems, problems
