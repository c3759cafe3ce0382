"""The page in a real Chromium, against the real server (``python -m memegen serve``).

Upload a photo, see the meme and the face's expression, edit the caption and watch the
meme redraw, re-roll, download PNG and JPEG, see a friendly error for a bad file. Also
leaves screenshots (desktop and phone) in /tmp for a human to look at.
"""

from __future__ import annotations

import base64
import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import playwright.sync_api as playwright_api
import pytest
from PIL import Image

from memegen import LABELS

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


def open_page(
    browser: Browser, base: str, *, fake_clock: bool = False, **context_options: object
) -> tuple[Page, list[str]]:
    """A fresh page on the app and a list that collects script errors and foreign requests.

    With ``fake_clock`` the page's timers run only when the test moves its clock on, so a
    test decides when the redraw after typing (600 ms later) is sent.
    """
    context = browser.new_context(accept_downloads=True, **context_options)
    page = context.new_page()
    if fake_clock:
        page.clock.install()
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
        # The page fetches the file first, and saves it under the server's name for it.
        assert re.fullmatch(r"meme-[\w-]+\.(png|jpg|webp)", download.suggested_filename)
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


# ---- accessibility and the page's edge cases ------------------------------------------

# WCAG contrast of computed colours: parse a CSS colour, lay a translucent one over what
# is behind it, and the ratio of two relative luminances.
COLOUR_KIT = """
    const parse = (text) => {
        const numbers = (text.match(/[\\d.]+/g) || []).map(Number);
        const scale = text.startsWith("color(") ? 255 : 1;
        return [...numbers.slice(0, 3).map((n) => n * scale), numbers.length > 3 ? numbers[3] : 1];
    };
    const over = (top, bottom) =>
        [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat(1);
    const backdrop = (element) => {
        const layers = [];
        for (let node = element; node; node = node.parentElement) {
            const colour = parse(getComputedStyle(node).backgroundColor);
            if (colour[3] > 0) layers.unshift(colour);
            if (colour[3] >= 1) break;
        }
        return layers.reduce((below, layer) => over(layer, below), [255, 255, 255, 1]);
    };
    const luminance = (colour) => {
        const [r, g, b] = colour.slice(0, 3).map((v) => {
            const c = v / 255;
            return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const ratio = (a, b) => {
        const [high, low] = [luminance(a), luminance(b)].sort((x, y) => y - x);
        return (high + 0.05) / (low + 0.05);
    };
    const textContrast = (element) => {
        const behind = backdrop(element);
        return ratio(over(parse(getComputedStyle(element).color), behind), behind);
    };
"""

# Each expression's tag and card name, cloned from the face on screen: their contrasts,
# and the tag's colour.
EXPRESSION_CONTRASTS = (
    "(labels) => {"
    + COLOUR_KIT
    + """
    const box = document.querySelector(".face-box");
    const card = document.querySelector(".face-card");
    return labels.map((label) => {
        const newBox = box.cloneNode(true);
        newBox.dataset.expression = label;
        box.parentNode.append(newBox);
        const newCard = card.cloneNode(true);
        const name = newCard.querySelector(".face-expression");
        name.dataset.expression = label;
        name.textContent = label;
        card.parentNode.append(newCard);
        const tag = newBox.querySelector(".face-tag");
        return {
            label,
            tag: textContrast(tag),
            word: textContrast(newBox.querySelector(".face-tag-word")),
            name: textContrast(name),
            tone: getComputedStyle(tag).backgroundColor,
        };
    });
}"""
)

# The focused control's ring (its widest box-shadow) against what is around it and against
# the gap between ring and control (a narrower shadow), if there is one.
FOCUS_RING_CONTRAST = (
    "() => {"
    + COLOUR_KIT
    + """
    const focused = document.activeElement;
    const host = focused.closest(".style-option") || focused;
    const shadows = getComputedStyle(host).boxShadow
        .split(/,(?![^(]*\\))/)
        .filter((shadow) => shadow.trim() !== "none")
        .map((shadow) => {
            const colour = shadow.match(/(?:rgba?|color)\\([^)]*\\)/)[0];
            const lengths = shadow.replace(colour, "").match(/-?[\\d.]+px/g) || [];
            return { colour: parse(colour), spread: parseFloat(lengths[3] || "0") };
        })
        .sort((a, b) => a.spread - b.spread);
    if (shadows.length === 0) return { id: focused.id || focused.tagName, ring: null };
    const behind = backdrop(host.parentElement);
    const ring = over(shadows[shadows.length - 1].colour, behind);
    const gap = shadows.length > 1 ? over(shadows[0].colour, behind) : behind;
    return {
        id: focused.id || focused.tagName,
        ring: Math.min(ratio(ring, behind), ratio(ring, gap)),
    };
}"""
)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_expression_colour_is_readable(server: str, browser: Browser, scheme: str) -> None:
    """WCAG 1.4.3: the tag on each face box (12 px bold on the expression's colour) and the
    expression's name on its face card reach 4.5:1 for every expression, and no two
    expressions share a colour."""
    page, problems = open_page(
        browser, server, viewport={"width": 1280, "height": 900}, color_scheme=scheme
    )
    upload_astronaut(page)
    measured = page.evaluate(EXPRESSION_CONTRASTS, list(LABELS))
    low = [
        (entry["label"], part, round(entry[part], 2))
        for entry in measured
        for part in ("tag", "word", "name")
        if entry[part] < 4.5
    ]
    assert not low, f"below 4.5:1 in {scheme} mode: {low}"
    assert len({entry["tone"] for entry in measured}) == len(LABELS), measured
    assert not problems, problems


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_focus_ring_stands_out(server: str, browser: Browser, scheme: str) -> None:
    """WCAG 1.4.11 and 2.4.7: the ring of every control Tab reaches is 3:1 or more against
    what surrounds it (and against the gap between it and the control)."""
    page, problems = open_page(
        browser, server, viewport={"width": 1280, "height": 900}, color_scheme=scheme
    )
    upload_astronaut(page)
    rings = []
    for _ in range(14):
        page.keyboard.press("Tab")
        rings.append(page.evaluate(FOCUS_RING_CONTRAST))
    measured = [ring for ring in rings if ring["ring"] is not None]
    assert len(measured) >= 8, rings
    faint = [(ring["id"], round(ring["ring"], 2)) for ring in measured if ring["ring"] < 3]
    assert not faint, f"focus ring below 3:1 in {scheme} mode: {faint}"
    assert not problems, problems


@pytest.mark.parametrize(("motion", "animation"), [("no-preference", "spin"), ("reduce", "pulse")])
def test_the_busy_spinner_turns_only_where_motion_is_welcome(
    server: str, browser: Browser, motion: str, animation: str
) -> None:
    """WCAG 2.3.3: with reduced motion asked for, the busy sign fades instead of turning."""
    page, problems = open_page(browser, server, reduced_motion=motion)
    spinner = page.locator(".spinner")
    assert spinner.evaluate("element => getComputedStyle(element).animationName") == animation
    assert not problems, problems


def test_a_long_file_name_in_an_error_does_not_widen_the_page(
    server: str, browser: Browser
) -> None:
    """WCAG 1.4.10: at 320 CSS px an error naming a long unbroken file name wraps."""
    page, problems = open_page(browser, server, viewport={"width": 320, "height": 640})
    name = "Screenshot_20240517-143312_com.android.chrome_with_a_very_long_name.pdf"
    transfer = page.evaluate_handle(
        """(name) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File(["%PDF-1.4"], name, { type: "application/pdf" }));
            return transfer;
        }""",
        name,
    )
    page.get_by_test_id("dropzone").dispatch_event("drop", {"dataTransfer": transfer})
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(name)
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    box = alert.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= 320
    assert not problems, problems


def test_dropping_several_files_takes_the_first_image(server: str, browser: Browser) -> None:
    page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
    make_transfer = """(files) => {
        const transfer = new DataTransfer();
        for (const [name, type, b64] of files) {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            transfer.items.add(new File([bytes], name, { type }));
        }
        return transfer;
    }"""
    notes = ["notes.txt", "text/plain", base64.b64encode(b"shopping list").decode()]
    report = ["report.pdf", "application/pdf", base64.b64encode(b"%PDF-1.4").decode()]
    photo = ["astronaut.jpg", "image/jpeg", base64.b64encode(ASTRONAUT.read_bytes()).decode()]
    alert = page.get_by_role("alert")

    # None is an image: the page says so, and sends nothing.
    transfer = page.evaluate_handle(make_transfer, [notes, report])
    page.get_by_test_id("dropzone").dispatch_event("drop", {"dataTransfer": transfer})
    expect(alert).to_contain_text("None of the 2 files dropped is an image")
    expect(page.get_by_test_id("meme-image")).to_be_hidden()

    # The image second in the list is the photo.
    transfer = page.evaluate_handle(make_transfer, [notes, photo, report])
    page.get_by_test_id("dropzone").dispatch_event("drop", {"dataTransfer": transfer})
    meme = page.get_by_test_id("meme-image")
    expect(meme).to_have_attribute("src", re.compile(r"/api/v1/memes/"), timeout=MEME_TIMEOUT_MS)
    expect(page.get_by_test_id("dropzone")).to_contain_text("astronaut.jpg")
    expect(page.get_by_test_id("face-expression").first).to_have_text("happy")
    expect(alert).to_be_empty()
    assert not problems, problems


def test_the_face_boxes_follow_the_checkbox_the_browser_restores(
    server: str, browser: Browser
) -> None:
    """Back to the page, Chromium ticks the checkbox as it was left; the boxes follow it."""
    page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
    upload_astronaut(page)
    show_boxes = page.get_by_test_id("show-boxes")
    show_boxes.uncheck()
    expect(page.get_by_test_id("face-boxes")).to_be_hidden()
    page.get_by_role("link", name="API (OpenAPI)").click()
    page.wait_for_url(re.compile("openapi"))
    page.go_back()
    page.wait_for_load_state("load")

    expect(show_boxes).not_to_be_checked()
    expect(page.get_by_test_id("face-boxes")).to_be_hidden()
    upload_astronaut(page)
    expect(page.get_by_test_id("face-box")).to_have_count(1)
    expect(page.get_by_test_id("face-box")).to_be_hidden()
    show_boxes.check()
    expect(page.get_by_test_id("face-box")).to_be_visible()
    # Chromium asks for /favicon.ico on the JSON page in between: that 404 is not ours.
    problems = [problem for problem in problems if "404 (NOT FOUND)" not in problem]
    assert not problems, problems


def test_an_expired_meme_is_not_downloaded_but_offered_again(
    browser: Browser, tmp_path: Path
) -> None:
    """Memes that expire at once (a lifetime of 0 s): the download says so, saves nothing,
    and the button it offers makes the meme again from the photo the page kept."""
    with live_server(tmp_path, MEMEGEN_MEME_TTL_SECONDS="0") as (_, base):
        page, _ = open_page(browser, base, viewport={"width": 1280, "height": 900})
        downloads: list[playwright_api.Download] = []
        page.on("download", lambda download: downloads.append(download))
        src = upload_astronaut(page)
        link = page.get_by_test_id("download-png")
        expect(link).not_to_have_attribute("aria-disabled", "true")
        link.click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("This meme has expired", timeout=MEME_TIMEOUT_MS)
        expect(alert).to_contain_text("0 seconds")
        assert downloads == []

        alert.get_by_role("button", name="Make it again").click()
        expect(page.get_by_test_id("meme-image")).not_to_have_attribute(
            "src", src, timeout=MEME_TIMEOUT_MS
        )
        expect(alert).to_be_empty()
        expect(link).to_be_focused()
        assert downloads == []


def test_a_refused_download_shows_the_servers_message(browser: Browser, tmp_path: Path) -> None:
    """One costly request a minute: making the meme spends it, so converting it to JPEG
    is refused (429), and the page shows why instead of saving the refusal as a file."""
    with live_server(tmp_path, MEMEGEN_RATE_LIMIT_PER_MINUTE="1") as (_, base):
        page, _ = open_page(browser, base, viewport={"width": 1280, "height": 900})
        downloads: list[playwright_api.Download] = []
        page.on("download", lambda download: downloads.append(download))
        upload_astronaut(page)
        page.get_by_test_id("download-jpeg").click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("Too many requests", timeout=MEME_TIMEOUT_MS)
        assert downloads == []
        # The stored PNG needs no conversion: it still downloads, under the server's name.
        with page.expect_download() as download_info:
            page.get_by_test_id("download-png").click()
        assert re.fullmatch(r"meme-[\w-]+\.png", download_info.value.suggested_filename)
        expect(alert).to_be_empty()


def test_a_download_in_progress_shows_it_and_leaves_other_errors_alone(
    server: str, browser: Browser
) -> None:
    """A slow download's late success cleared an error shown meanwhile (a refused
    re-roll), and the link looked as if nothing were happening."""
    page, _ = open_page(browser, server, viewport={"width": 1280, "height": 900})
    upload_astronaut(page)
    held: list[playwright_api.Route] = []
    page.route("**/*.png?download=1", lambda route: held.append(route))
    page.route("**/api/v1/memes", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"error": {"code": "server_busy", "message": "The server is busy."}}',
    ))
    link = page.get_by_test_id("download-png")
    link.click(no_wait_after=True)
    wait_until_held(page, held)
    expect(link).to_have_attribute("aria-busy", "true")
    assert link.evaluate("link => getComputedStyle(link).cursor") == "progress"
    page.get_by_test_id("reroll-button").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("The server is busy.")
    with page.expect_download():
        held[0].continue_()
    expect(link).not_to_have_attribute("aria-busy", "true")
    expect(alert).to_contain_text("The server is busy.")


def wait_until_held(page: Page, held: list[playwright_api.Route]) -> None:
    """Until the page's request reaches the route that holds it (the page's own clock may
    be stopped, so this waits on the test's)."""
    deadline = time.monotonic() + MEME_TIMEOUT_MS / 1000
    while not held:
        assert time.monotonic() < deadline, "the page sent no request"
        page.evaluate("0")  # lets Playwright deliver the route to the handler


def test_downloads_stay_off_while_newer_typing_waits_to_be_drawn(
    server: str, browser: Browser
) -> None:
    """A redraw that lands while the fields hold newer text leaves the downloads off."""
    page, problems = open_page(
        browser, server, fake_clock=True, viewport={"width": 1280, "height": 900}
    )
    upload_astronaut(page)
    top = page.get_by_test_id("top-input")
    download = page.get_by_test_id("download-png")
    meme = page.get_by_test_id("meme-image")
    held: list[playwright_api.Route] = []
    page.route("**/api/v1/memes", lambda route: held.append(route))

    top.fill("first")
    page.clock.run_for(700)  # the redraw of "first" is sent, and held
    wait_until_held(page, held)
    before = meme.get_attribute("src") or ""
    top.fill("first and more")  # its redraw waits on the (stopped) clock
    held[0].continue_()
    page.unroute("**/api/v1/memes")
    expect(meme).not_to_have_attribute("src", before, timeout=MEME_TIMEOUT_MS)
    expect(meme).to_have_attribute("alt", re.compile("^Meme: first /"))
    expect(page.get_by_test_id("stage")).to_have_attribute("aria-busy", "false")
    expect(download).to_have_attribute("aria-disabled", "true")

    page.clock.run_for(700)
    expect(meme).to_have_attribute("alt", re.compile("first and more"), timeout=MEME_TIMEOUT_MS)
    expect(download).not_to_have_attribute("aria-disabled", "true")
    assert not problems, problems


def test_typing_during_a_reroll_wins_over_its_caption(server: str, browser: Browser) -> None:
    page, problems = open_page(
        browser, server, fake_clock=True, viewport={"width": 1280, "height": 900}
    )
    upload_astronaut(page)
    top = page.get_by_test_id("top-input")
    meme = page.get_by_test_id("meme-image")
    held: list[playwright_api.Route] = []
    page.route("**/api/v1/memes", lambda route: held.append(route))
    page.get_by_test_id("reroll-button").click()
    wait_until_held(page, held)
    top.fill("my own joke")
    held[0].continue_()  # the re-roll's answer, if the page still wants it
    page.unroute("**/api/v1/memes")
    expect(page.get_by_test_id("stage")).to_have_attribute(
        "aria-busy", "false", timeout=MEME_TIMEOUT_MS
    )
    page.clock.run_for(700)
    expect(meme).to_have_attribute("alt", re.compile("my own joke"), timeout=MEME_TIMEOUT_MS)
    expect(page.get_by_test_id("stage")).to_have_attribute("aria-busy", "false")
    expect(top).to_have_value("my own joke")
    assert not problems, problems


def test_a_second_photo_picked_while_the_first_is_read_shows_its_own_preview(
    server: str, browser: Browser, tmp_path: Path
) -> None:
    page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
    green = tmp_path / "green.png"
    Image.new("RGB", (60, 40), (20, 160, 60)).save(green)
    held: list[playwright_api.Route] = []
    page.route("**/api/v1/memes", lambda route: held.append(route))
    picker = page.get_by_test_id("file-input")
    picker.set_input_files(ASTRONAUT)
    # What the spinner says is announced too.
    expect(page.get_by_test_id("status")).to_have_text("Reading faces…")
    picker.set_input_files(green)
    expect(page.get_by_test_id("dropzone")).to_contain_text("green.png")
    thumb = page.locator("#thumb").get_attribute("src")
    assert thumb and thumb.startswith("blob:")
    expect(page.get_by_test_id("meme-image")).to_have_attribute("src", thumb)
    for route in held:
        route.continue_()
    page.unroute("**/api/v1/memes")
    expect(page.get_by_test_id("meme-image")).to_have_attribute(
        "src", re.compile(r"/api/v1/memes/"), timeout=MEME_TIMEOUT_MS
    )
    expect(page.get_by_test_id("faces-summary")).to_contain_text("No face found")
    assert not problems, problems


def test_pasting_a_photo_into_a_caption_field_keeps_the_focus_there(
    server: str, browser: Browser
) -> None:
    page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
    src = upload_astronaut(page)
    bottom = page.get_by_test_id("bottom-input")
    bottom.focus()
    transfer = page.evaluate_handle(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "image.jpg", { type: "image/jpeg" }));
            return transfer;
        }""",
        base64.b64encode(ASTRONAUT.read_bytes()).decode(),
    )
    page.evaluate(
        "(transfer) => document.activeElement.dispatchEvent(new ClipboardEvent('paste', "
        "{ clipboardData: transfer, bubbles: true, cancelable: true }))",
        transfer,
    )
    meme = page.get_by_test_id("meme-image")
    expect(meme).not_to_have_attribute("src", src, timeout=MEME_TIMEOUT_MS)
    expect(page.get_by_test_id("stage")).to_have_attribute("aria-busy", "false")
    expect(bottom).to_be_enabled()
    expect(bottom).to_be_focused()
    assert not problems, problems


def test_a_meme_without_a_caption_says_what_it_shows(server: str, browser: Browser) -> None:
    page, problems = open_page(browser, server, viewport={"width": 1280, "height": 900})
    expect(page.get_by_role("heading", level=1)).to_have_accessible_name("MemeGen")
    src = upload_astronaut(page)
    page.get_by_test_id("top-input").fill("")
    bottom = page.get_by_test_id("bottom-input")
    bottom.fill("")
    bottom.press("Enter")
    meme = page.get_by_test_id("meme-image")
    expect(meme).not_to_have_attribute("src", src, timeout=MEME_TIMEOUT_MS)
    expect(meme).to_have_attribute("alt", "Meme with no caption: your photo, one happy face")
    assert not problems, problems
