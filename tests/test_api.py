"""The HTTP API through Flask's test client, on the real pipeline (no mocks).

Covers the happy paths, every bad input the project knows (each must give its status and
code, leave nothing on disk, and not stop the next good request), the limits (bytes,
rate), expiry, the OpenAPI document and the page's own assets.
"""

from __future__ import annotations

import io
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.test import TestResponse

from memegen import LABELS
from memegen.render import STYLES
from memegen.storage import ID_PATTERN
from memegen.web.conversions import Conversions
from memegen.web.ratelimit import RateLimited, RateLimiter, client_key
from memegen.web.state import EXTENSION_KEY

from sample_images import (
    BAD_INPUTS,
    ODD_IMAGES,
    animated_gif,
    astronaut_jpeg,
    black_png,
    fifty_megapixel_phone_jpeg,
    gif_declaring_a_frame_past_pillows_limit,
    gif_with_a_frame_bigger_than_its_screen,
    heic,
)

PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


def post(
    client: FlaskClient,
    path: str = "/api/v1/memes",
    data: bytes | None = None,
    filename: str = "photo.jpg",
    part_type: str | None = None,
    **fields: str | list[str],
) -> TestResponse:
    """POST ``data`` (default: the astronaut) as the ``image`` part, its Content-Type
    ``part_type`` if given, plus text fields (a list sends its field once per item)."""
    image = astronaut_jpeg() if data is None else data
    part = (io.BytesIO(image), filename) if part_type is None else (
        io.BytesIO(image), filename, part_type
    )
    form: dict[str, Any] = {"image": part, **fields}
    return client.post(path, data=form, content_type="multipart/form-data")


def assert_error(response: TestResponse, status: int, code: str) -> None:
    """The one error shape: JSON, exactly ``{"error": {"code", "message"}}``."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"].strip()
    assert "Traceback" not in body["error"]["message"]


def stored_files(storage_dir: Path) -> list[str]:
    return sorted(path.name for path in storage_dir.iterdir()) if storage_dir.exists() else []


def small_jpeg() -> bytes:
    """The astronaut at 160 px (a few KB), for tests that set a tiny byte limit."""
    image = Image.open(io.BytesIO(astronaut_jpeg())).convert("RGB").resize((160, 160))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# ---- making and fetching memes ------------------------------------------------------


def test_make_meme_happy_path(client: FlaskClient, app: Flask) -> None:
    response = post(client)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert ID_PATTERN.fullmatch(body["id"])
    assert body["image_url"] == f"/api/v1/memes/{body['id']}.jpg"
    assert response.headers["Location"] == body["image_url"]
    assert body["format"] == "jpeg"
    assert body["source"] == {"width": 512, "height": 512}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["expires_at"])
    assert set(body["caption"]) == {"top", "bottom"}
    assert body["caption"]["top"] or body["caption"]["bottom"]

    assert len(body["faces"]) >= 1
    for face in body["faces"]:
        assert list(face["scores"]) == list(LABELS)
        assert sum(face["scores"].values()) == pytest.approx(1.0, abs=0.01)
        assert face["expression"] == max(face["scores"], key=face["scores"].get)
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= body["width"] and 0 <= y1 < y2 <= body["height"]
    assert body["faces"][0]["expression"] == "happy", "the astronaut smiles"
    assert body["mood"] == "happy"

    image_response = client.get(body["image_url"])
    assert image_response.status_code == 200
    assert image_response.mimetype == "image/jpeg"
    assert "max-age=" in image_response.headers["Cache-Control"]
    assert "Content-Disposition" not in image_response.headers
    image = open_image(image_response.data)
    assert image.format == "JPEG"
    assert image.size == (body["width"], body["height"])
    assert max(image.size) <= app.extensions["memegen"].settings.output_max_side


@pytest.mark.parametrize("style", ["modern", "poster"])
def test_face_boxes_follow_the_photo_into_a_band_or_a_frame(
    client: FlaskClient, style: str
) -> None:
    classic = post(client, style="classic", seed="1").get_json()
    framed = post(client, style=style, seed="1").get_json()
    assert framed["height"] > classic["height"], "the band or frame adds to the photo"
    (face,) = framed["faces"]
    x1, y1, x2, y2 = face["box"]
    cx1, cy1, cx2, cy2 = classic["faces"][0]["box"]
    assert y1 > cy1, "moved down past the band or the frame"
    assert abs((x2 - x1) / (cx2 - cx1) - (y2 - y1) / (cy2 - cy1)) < 0.05, "scaled, not stretched"
    image = open_image(client.get(framed["image_url"]).data)
    assert image.size == (framed["width"], framed["height"])


def test_openapi_lists_every_style(client: FlaskClient) -> None:
    schemas = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    assert schemas["MemeForm"]["properties"]["style"]["enum"] == list(STYLES)


def test_an_animated_upload_stays_animated_as_gif_or_webp(client: FlaskClient) -> None:
    body = post(client, data=animated_gif(), filename="dance.gif", format="gif").get_json()
    assert body["frames"] == 3 and body["image_url"].endswith(".gif")
    for extension, frames in (("gif", 3), ("webp", 3), ("png", 1), ("jpg", 1)):
        url = body["image_url"].removesuffix(".gif") + f".{extension}"
        image = open_image(client.get(url).data)
        assert getattr(image, "n_frames", 1) == frames, extension
        assert image.size == (body["width"], body["height"])
    still = post(client, data=animated_gif(), filename="dance.gif", format="png").get_json()
    assert still["frames"] == 1


def test_output_size_is_capped(make_app: Callable[..., Flask], pipeline: Any) -> None:
    # The cap belongs to the pipeline's settings; a photo bigger than it must come back smaller.
    cap = pipeline.settings.output_max_side
    big = Image.open(io.BytesIO(astronaut_jpeg())).convert("RGB").resize((cap + 400, cap + 400))
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=80)
    client = make_app().test_client()
    response = post(client, data=buffer.getvalue())
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert max(body["width"], body["height"]) <= cap
    assert body["source"] == {"width": cap + 400, "height": cap + 400}
    image = open_image(client.get(body["image_url"]).data)
    assert image.size == (body["width"], body["height"])


@pytest.mark.parametrize(
    ("fmt", "extension"), [("png", "png"), ("webp", "webp"), ("jpg", "jpg"), ("gif", "gif")]
)
def test_requested_format_is_stored(client: FlaskClient, fmt: str, extension: str) -> None:
    body = post(client, format=fmt).get_json()
    assert body["image_url"].endswith(f".{extension}")
    response = client.get(body["image_url"])
    image = open_image(response.data)
    assert image.format == {"png": "PNG", "webp": "WEBP", "jpg": "JPEG", "gif": "GIF"}[fmt]
    assert response.mimetype == f"image/{'jpeg' if fmt == 'jpg' else fmt}"


@pytest.mark.parametrize("extension", ["png", "jpg", "jpeg", "webp"])
def test_other_extension_converts_and_download_adds_attachment(
    client: FlaskClient, extension: str
) -> None:
    body = post(client, format="png").get_json()
    url = body["image_url"].removesuffix(".png") + f".{extension}"
    response = client.get(f"{url}?download=1")
    assert response.status_code == 200
    fmt = "jpeg" if extension in ("jpg", "jpeg") else extension
    assert response.mimetype == f"image/{fmt}"
    disposition = response.headers["Content-Disposition"]
    saved_extension = "jpg" if fmt == "jpeg" else fmt
    assert disposition == f'attachment; filename="meme-{body["id"]}.{saved_extension}"'
    image = open_image(response.data)
    assert image.format == PIL_FORMATS[fmt]
    assert image.size == (body["width"], body["height"])


def test_conditional_get_answers_304(client: FlaskClient) -> None:
    url = post(client).get_json()["image_url"]
    etag = client.get(url).headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""


def test_revalidating_a_converted_meme_answers_304_without_converting_it(
    make_app: Callable[..., Flask],
) -> None:
    """A 304 costs nothing: no conversion, no work slot, no rate-limit hit, even once the
    conversion has left the memory it was kept in."""
    app = make_app(rate_limit_per_minute=2)
    client = app.test_client()
    url = post(client, format="gif").get_json()["image_url"].removesuffix(".gif")
    converted = client.get(f"{url}.webp")
    app.extensions[EXTENSION_KEY] = replace(app.extensions[EXTENSION_KEY],
                                            conversions=Conversions(kept=0))
    app.extensions[EXTENSION_KEY].work.close()
    for _ in range(3):
        again = client.get(f"{url}.webp", headers={"If-None-Match": converted.headers["ETag"]})
        assert again.status_code == 304
        assert again.headers["ETag"] == converted.headers["ETag"]
        assert again.headers["Cache-Control"] == converted.headers["Cache-Control"]
    assert client.get(f"{url}.gif", headers={"If-None-Match": converted.headers["ETag"]}
                      ).status_code == 200, "another format is another tag"


def test_given_text_replaces_the_caption_and_empty_means_none(client: FlaskClient) -> None:
    body = post(client, top="hello there", bottom="").get_json()
    assert body["caption"] == {"top": "hello there", "bottom": ""}


def test_same_seed_same_caption(client: FlaskClient) -> None:
    first = post(client, seed="12345").get_json()["caption"]
    second = post(client, seed="12345").get_json()["caption"]
    assert first == second


def test_reroll_with_recent_captions_never_repeats_them(
    client: FlaskClient, pipeline: Any
) -> None:
    happy = pipeline.captions.captions("happy")
    recent = [f"{caption.top} | {caption.bottom}" for caption in happy[:10]]
    for seed in range(8):
        body = post(client, seed=str(seed), recent=recent).get_json()
        assert body["mood"] == "happy"
        shown = f"{body['caption']['top']} | {body['caption']['bottom']}"
        assert shown not in recent


def test_recent_changes_the_pick_a_seed_would_make(client: FlaskClient) -> None:
    first = post(client, seed="77").get_json()["caption"]
    seen = f"{first['top']} | {first['bottom']}"
    assert post(client, seed="77", recent=[seen]).get_json()["caption"] != first


@pytest.mark.parametrize(
    "recent",
    [
        ["no bar here"],
        ["one | two | three"],
        ["x" * 201 + " | fine"],
        [f"caption {number} | again" for number in range(11)],
    ],
)
def test_bad_recent_captions_are_400(client: FlaskClient, recent: list[str]) -> None:
    assert_error(post(client, recent=recent), 400, "invalid_field")


def test_analyze(client: FlaskClient) -> None:
    response = post(client, "/api/v1/analyze")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"width", "height", "faces"}
    assert (body["width"], body["height"]) == (512, 512)
    assert body["faces"], "the astronaut's face is found"
    face = body["faces"][0]
    assert set(face) == {"box", "score", "expression", "scores"}
    assert sum(face["scores"].values()) == pytest.approx(1.0, abs=0.01)
    assert face["expression"] == "happy"


def test_analyze_whole_image(client: FlaskClient) -> None:
    body = post(client, "/api/v1/analyze", whole_image="true").get_json()
    assert len(body["faces"]) == 1
    assert body["faces"][0]["box"] == [0, 0, 512, 512]


def test_photo_without_a_face_is_not_an_error(client: FlaskClient) -> None:
    ramp = np.linspace(0, 255, 300, dtype=np.uint8)
    sky = np.stack([np.tile(ramp, (200, 1))] * 3, axis=2)
    buffer = io.BytesIO()
    Image.fromarray(sky).save(buffer, "PNG")
    response = post(client, data=buffer.getvalue(), filename="sky.png")
    assert response.status_code == 201
    body = response.get_json()
    assert body["faces"] == []
    assert body["mood"] == "noface"


@pytest.mark.parametrize("name", sorted(ODD_IMAGES))
def test_odd_but_valid_images_make_memes(client: FlaskClient, name: str) -> None:
    response = post(client, data=ODD_IMAGES[name](), filename=name)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    image = open_image(client.get(body["image_url"]).data)
    assert image.size == (body["width"], body["height"])
    assert image.mode == "RGB"


def test_exif_rotation_is_applied(client: FlaskClient) -> None:
    body = post(client, data=ODD_IMAGES["exif_rotated_jpeg"]()).get_json()
    assert body["source"] == {"width": 512, "height": 512}
    assert body["faces"], "the face is found once she stands upright"


@pytest.mark.parametrize("part_type", ["image/heic", "image/heif", "application/octet-stream"])
def test_a_heic_from_a_phone_makes_the_meme_the_jpeg_makes(
    client: FlaskClient, part_type: str
) -> None:
    """Browsers send a .heic file as image/heic or image/heif, or with no type they know."""
    response = post(client, data=heic(), filename="IMG_0001.HEIC", part_type=part_type)
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    from_jpeg = post(client).get_json()
    assert body["source"] == from_jpeg["source"] == {"width": 512, "height": 512}
    (face,) = body["faces"]
    assert face["expression"] == "happy" and body["mood"] == "happy"
    assert np.abs(np.subtract(face["box"], from_jpeg["faces"][0]["box"])).max() <= 8
    assert open_image(client.get(body["image_url"]).data).size == (body["width"], body["height"])


def test_a_rotated_heic_is_analyzed_upright(client: FlaskClient) -> None:
    response = post(client, "/api/v1/analyze", data=heic("astronaut-rotated"),
                    filename="IMG_0002.HEIC", part_type="image/heic")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert (body["width"], body["height"]) == (384, 512)
    assert [face["expression"] for face in body["faces"]] == ["happy"], "found once upright"


def test_a_fifty_megapixel_phone_jpeg_is_let_in_and_a_png_that_big_is_not(
    client: FlaskClient,
) -> None:
    response = post(client, data=fifty_megapixel_phone_jpeg(), filename="PXL_0001.jpg")
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["source"] == {"width": 8160, "height": 6120}
    refused = post(client, data=black_png(8160, 6120), filename="scan.png")
    assert_error(refused, 413, "image_too_large")
    assert refused.get_json()["error"]["message"] == (
        "The image is 8160×6120 (49.9 megapixels); the limit is 40 megapixels."
    )


# ---- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/memes", "/api/v1/analyze"])
@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_gives_its_error_and_the_server_goes_on(
    client: FlaskClient, storage_dir: Path, path: str, name: str
) -> None:
    make, status, code = BAD_INPUTS[name]
    assert_error(post(client, path, data=make(), filename=f"{name}.bin"), status, code)
    assert stored_files(storage_dir) == [], "a refused upload leaves nothing behind"

    good = post(client)
    assert good.status_code == 201
    assert stored_files(storage_dir) == [good.get_json()["image_url"].rsplit("/", 1)[1]]


def test_an_animation_frame_over_the_pixel_limit_is_413_and_the_server_goes_on(
    client: FlaskClient, storage_dir: Path
) -> None:
    data = gif_with_a_frame_bigger_than_its_screen()
    response = post(client, data=data, filename="grows.gif", format="gif")
    assert_error(response, 413, "image_too_large")
    assert stored_files(storage_dir) == []
    assert post(client, data=data, filename="grows.gif", format="png").status_code == 201
    bomb = gif_declaring_a_frame_past_pillows_limit()
    assert_error(post(client, data=bomb, filename="bomb.gif", format="gif"), 413,
                 "image_too_large")


def test_json_body_is_415(client: FlaskClient) -> None:
    response = client.post("/api/v1/memes", json={"image": "aGVsbG8="})
    assert_error(response, 415, "unsupported_media_type")


def test_urlencoded_body_is_415(client: FlaskClient) -> None:
    assert_error(client.post("/api/v1/analyze", data={"top": "x"}), 415, "unsupported_media_type")


def test_missing_image_field_is_400(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/memes",
        data={"photo": (io.BytesIO(astronaut_jpeg()), "a.jpg")},
        content_type="multipart/form-data",
    )
    assert_error(response, 400, "missing_field")
    text_only = client.post(
        "/api/v1/memes", data={"image": "not a file"}, content_type="multipart/form-data"
    )
    assert_error(text_only, 400, "missing_field")


@pytest.mark.parametrize(
    "fields",
    [
        {"seed": "abc"},
        {"seed": "-1"},
        {"seed": str(2**64)},
        {"format": "bmp"},
        {"style": "<script>"},
        {"top": "x" * 201},
        {"bottom": "y" * 201},
        {"top": "你好世界"},
        {"bottom": "שלום עולם"},
        {"top": "ding\x07"},
    ],
)
def test_bad_form_values_are_400(client: FlaskClient, fields: dict[str, str]) -> None:
    assert_error(post(client, **fields), 400, "invalid_field")


def test_a_caption_no_bundled_font_can_draw_is_refused_by_name(client: FlaskClient) -> None:
    message = post(client, top="ok", bottom="你好").get_json()["error"]["message"]
    assert message.startswith("The bottom text uses characters") and "你 好" in message


def test_a_form_too_malformed_to_parse_says_so(client: FlaskClient) -> None:
    body = (
        b"--XX\r\nContent-Disposition: form-data; name=\"image\"; filename=\"\xff\xe9.jpg\"\r\n"
        b"Content-Type: image/jpeg\r\n\r\n" + astronaut_jpeg() + b"\r\n--XX--\r\n"
    )
    response = client.post(
        "/api/v1/memes", data=body, content_type="multipart/form-data; boundary=XX"
    )
    assert_error(response, 400, "missing_field")
    assert "could not be read" in response.get_json()["error"]["message"]


def test_bad_flag_is_400(client: FlaskClient) -> None:
    assert_error(post(client, "/api/v1/analyze", whole_image="maybe"), 400, "invalid_field")


def test_upload_over_the_byte_limit_is_413(
    make_app: Callable[..., Flask], storage_dir: Path
) -> None:
    client = make_app(max_upload_bytes=20_000).test_client()
    # Over the file limit but inside the multipart allowance: caught on the file's size.
    assert len(astronaut_jpeg()) > 20_000
    assert_error(post(client), 413, "upload_too_large")
    # Far over: refused from Content-Length before the body is parsed.
    assert_error(post(client, data=b"\xff" * 500_000), 413, "upload_too_large")
    assert_error(post(client, "/api/v1/analyze", data=b"\xff" * 500_000), 413, "upload_too_large")
    assert stored_files(storage_dir) == []
    assert post(client, data=small_jpeg()).status_code == 201


def test_a_form_refused_for_a_big_text_field_or_many_parts_says_so(
    client: FlaskClient, storage_dir: Path
) -> None:
    """Werkzeug refuses a text field over its form memory limit, or over 1,000 parts, with a
    413 of its own: the message must name that, not the 25 MB limit the body is far under."""
    for response in (
        post(client, top="a" * 600_000),
        post(client, "/api/v1/analyze", x=["1"] * 1_500),
    ):
        assert_error(response, 413, "upload_too_large")
        message = response.get_json()["error"]["message"]
        assert "25 MB" not in message
        assert "text field" in message and "1,000 parts" in message
    assert stored_files(storage_dir) == []
    assert post(client).status_code == 201


def test_uploads_are_never_spooled_to_disk(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an upload was about to be written to a temporary file")

    import werkzeug.formparser

    monkeypatch.setattr(werkzeug.formparser, "SpooledTemporaryFile", refuse)
    noise = np.random.default_rng(1).integers(0, 256, (800, 800, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "JPEG", quality=95)
    assert len(buffer.getvalue()) > 600_000, "bigger than Werkzeug's in-memory threshold"
    assert post(client, data=buffer.getvalue()).status_code == 201


# ---- not found, expiry, methods, crashes ----------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("/api/v1/memes/AAAAAAAAAAAAAAAAAAAAAA.jpg", "meme_not_found"),
        ("/api/v1/memes/not-an-id.png", "meme_not_found"),
        ("/api/v1/memes/..%2F..%2Fetc%2Fpasswd.png", "not_found"),
        ("/api/v1/memes/..%2F..%2Fetc%2Fpasswd", "not_found"),
    ],
)
def test_unknown_meme_is_404(client: FlaskClient, url: str, code: str) -> None:
    assert_error(client.get(url), 404, code)


def test_unknown_extension_is_404(client: FlaskClient) -> None:
    body = post(client).get_json()
    bmp_url = body["image_url"].removesuffix(".jpg") + ".bmp"
    assert_error(client.get(bmp_url), 404, "meme_not_found")


def test_expired_meme_is_404(make_app: Callable[..., Flask], storage_dir: Path) -> None:
    client = make_app(meme_ttl_seconds=0).test_client()
    response = post(client)
    assert response.status_code == 201
    expired = client.get(response.get_json()["image_url"])
    assert_error(expired, 404, "meme_not_found")
    assert "kept 0 seconds" in expired.get_json()["error"]["message"]
    assert stored_files(storage_dir) == [], "the expired file is deleted on read"


def test_unknown_path_and_wrong_method_are_json(client: FlaskClient) -> None:
    assert_error(client.get("/no/such/page"), 404, "not_found")
    response = client.get("/api/v1/memes")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    assert_error(client.delete("/api/v1/analyze"), 405, "method_not_allowed")


def test_a_meme_the_disk_will_not_take_is_503_and_the_server_goes_on(
    client: FlaskClient, storage_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full, read-only or vanished disk is the server's condition, not a bug: no 500."""
    assert post(client).status_code == 201
    shutil.rmtree(storage_dir)
    storage_dir.write_text("a file where the folder was")
    with caplog.at_level("ERROR", logger="memegen.web"):
        refused = post(client)
    assert_error(refused, 503, "storage_unavailable")
    assert refused.headers["Retry-After"] == "60"
    assert "Traceback" not in caplog.text and "cannot store a meme" in caplog.text
    storage_dir.unlink()
    assert post(client).status_code == 201


def test_unexpected_error_is_a_generic_500_and_is_logged(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> str:
        raise RuntimeError("secret internal detail")

    app.add_url_rule("/test-only/broken", view_func=broken)
    client = app.test_client()
    with caplog.at_level("ERROR", logger="memegen.web"):
        response = client.get("/test-only/broken")
    assert_error(response, 500, "internal_error")
    assert "secret internal detail" not in response.get_data(as_text=True)
    assert "secret internal detail" in caplog.text
    assert post(client).status_code == 201


# ---- rate limit -----------------------------------------------------------------------


def test_a_conversion_counts_against_the_rate_limit_and_a_kept_one_does_not(
    make_app: Callable[..., Flask],
) -> None:
    """Converting an animation costs as much as making it; one kept in memory costs nothing."""
    client = make_app(rate_limit_per_minute=2).test_client()
    url = post(client, format="png").get_json()["image_url"].removesuffix(".png")
    assert client.get(f"{url}.webp").status_code == 200
    assert client.get(f"{url}.webp").status_code == 200
    assert client.get(f"{url}.png").status_code == 200
    assert_error(client.get(f"{url}.jpg"), 429, "rate_limited")


def test_rate_limit_gives_429_with_retry_after(make_app: Callable[..., Flask]) -> None:
    client = make_app(rate_limit_per_minute=2).test_client()
    first = post(client, "/api/v1/analyze")
    assert first.status_code == 200
    meme = post(client)
    assert meme.status_code == 201
    limited = post(client, "/api/v1/analyze")
    assert_error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # Fetching memes and pages is cheap and not counted.
    assert client.get(meme.get_json()["image_url"]).status_code == 200
    assert client.get("/healthz").status_code == 200
    # Other clients have their own budget.
    other = client.post(
        "/api/v1/analyze",
        data={"image": (io.BytesIO(astronaut_jpeg()), "a.jpg")},
        content_type="multipart/form-data",
        environ_base={"REMOTE_ADDR": "10.0.0.2"},
    )
    assert other.status_code == 200


def test_a_request_turned_away_as_busy_does_not_spend_the_rate_limit(
    make_app: Callable[..., Flask],
) -> None:
    """A 503 ``server_busy`` did no work, so the client's budget is as it was."""
    app = make_app(rate_limit_per_minute=2)
    limiter = app.extensions[EXTENSION_KEY].limiter
    client = app.test_client()
    url = post(client, format="gif").get_json()["image_url"].removesuffix(".gif")
    app.extensions[EXTENSION_KEY].work.close()
    assert_error(post(client), 503, "server_busy")
    assert_error(post(client, "/api/v1/analyze"), 503, "server_busy")
    assert_error(client.get(f"{url}.webp"), 503, "server_busy")
    assert retry_after(limiter, "127.0.0.1") is None, "one hit of two left"
    assert retry_after(limiter, "127.0.0.1") is not None


def test_a_request_that_waited_in_line_and_gave_up_keeps_its_rate_limit_hit(
    make_app: Callable[..., Flask],
) -> None:
    """It held a place in line: were that free, one client could keep the line full."""
    app = make_app(rate_limit_per_minute=1)
    work = app.extensions[EXTENSION_KEY].work
    work.running, work.wait_seconds = 0, 0.05  # every slot taken, and a short wait
    client = app.test_client()
    assert_error(post(client), 503, "server_busy")
    assert_error(post(client), 429, "rate_limited")


def test_a_photo_whose_client_hung_up_before_its_turn_is_not_made(
    make_app: Callable[..., Flask], storage_dir: Path
) -> None:
    """Waitress says so through ``waitress.client_disconnected``; the work slot is freed."""
    client = make_app().test_client()
    gone = {"waitress.client_disconnected": lambda: True}
    response = client.post(
        "/api/v1/memes",
        data={"image": (io.BytesIO(astronaut_jpeg()), "a.jpg")},
        content_type="multipart/form-data",
        environ_base=gone,
    )
    assert_error(response, 499, "client_closed_request")
    assert not any(storage_dir.iterdir())
    assert post(client).status_code == 201, "the slot was given back"


def test_a_meme_whose_client_hung_up_while_it_was_made_is_not_kept(
    make_app: Callable[..., Flask], storage_dir: Path
) -> None:
    client = make_app().test_client()
    answers = iter([False, True])  # connected when its turn came, gone once it was made
    response = client.post(
        "/api/v1/memes",
        data={"image": (io.BytesIO(astronaut_jpeg()), "a.jpg")},
        content_type="multipart/form-data",
        environ_base={"waitress.client_disconnected": lambda: next(answers)},
    )
    assert_error(response, 499, "client_closed_request")
    assert not any(storage_dir.iterdir())


def retry_after(limiter: RateLimiter, key: str) -> float | None:
    """Count a hit for ``key``: None if it was allowed, else the wait the limiter asked for."""
    try:
        limiter.hit(key)
    except RateLimited as refusal:
        return refusal.retry_after
    return None


def test_rate_limiter_takes_back_the_hit_it_is_given_only() -> None:
    """With two requests of one client in flight, a refusal gives back its own hit: the
    other one's, newer or older, still counts."""
    now = [0.0]
    limiter = RateLimiter(2, window=60, clock=lambda: now[0])
    refused = limiter.hit("a")
    now[0] = 10
    limiter.hit("a")  # a second request, counted after the one refused
    limiter.take_back("a", refused)
    limiter.take_back("b", refused)  # a client never seen: nothing to give back
    assert retry_after(limiter, "a") is None
    assert retry_after(limiter, "a") == pytest.approx(60), "the hit at 10 s still counts"
    limiter.take_back("a", refused)  # given back already: nothing more to give
    assert retry_after(limiter, "a") == pytest.approx(60)


def test_rate_limiter_window_slides() -> None:
    now = [0.0]
    limiter = RateLimiter(3, window=60, clock=lambda: now[0])
    assert [retry_after(limiter, "a") for _ in range(3)] == [None, None, None]
    assert retry_after(limiter, "a") == pytest.approx(60)
    now[0] = 30
    assert retry_after(limiter, "a") == pytest.approx(30)
    assert retry_after(limiter, "b") is None
    now[0] = 60.5
    assert retry_after(limiter, "a") is None, "the first hits have left the window"


def test_rate_limiter_is_exact_under_threads() -> None:
    limiter = RateLimiter(50)
    allowed: list[bool] = []

    def hammer() -> None:
        for _ in range(100):
            allowed.append(retry_after(limiter, "same client") is None)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 50


def test_rate_limiter_forgets_the_longest_idle_client_past_its_size() -> None:
    limiter = RateLimiter(1, max_clients=2)
    assert [retry_after(limiter, key) for key in ("a", "b")] == [None, None]
    assert retry_after(limiter, "a") is not None  # a is now the most recent
    assert retry_after(limiter, "c") is None  # b, idle longest, is forgotten
    assert retry_after(limiter, "b") is None
    assert retry_after(limiter, "a") is None, "a was forgotten for b"


@pytest.mark.parametrize(("address", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    (None, "unknown"),
])
def test_an_ipv6_client_is_its_64_and_a_mapped_ipv4_one_its_address(address, key) -> None:
    assert client_key(address) == key


def test_zero_rate_limit_disables_it() -> None:
    limiter = RateLimiter(0)
    assert all(retry_after(limiter, "a") is None for _ in range(1000))


# ---- documents and page ---------------------------------------------------------------


def test_openapi_document(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"].startswith("3.1")
    assert {"title", "version"} <= set(document["info"])
    assert {"/api/v1/memes", "/api/v1/memes/{id}.{ext}", "/api/v1/analyze", "/healthz"} <= set(
        document["paths"]
    )
    assert document["paths"]["/api/v1/memes"]["post"]["responses"]["201"]
    schemas = document["components"]["schemas"]
    assert schemas["Error"]["properties"]["error"]["required"] == ["code", "message"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if "$ref" in node else []
            return found + [ref for value in node.values() for ref in refs(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in refs(value)]
        return []

    meme_form = schemas["MemeForm"]["properties"]
    assert meme_form["recent"]["type"] == "array" and meme_form["recent"]["maxItems"] == 10
    assert {"noface", "group", "mixed"} <= set(schemas["Meme"]["properties"]["mood"]["enum"])
    for ref in refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    for path in ("/api/v1/memes", "/api/v1/analyze"):
        responses = document["paths"][path]["post"]["responses"]
        for status in ("400", "413", "415", "422", "429", "500", "503"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}
        assert "Retry-After" in responses["503"]["headers"]
    image_responses = document["paths"]["/api/v1/memes/{id}.{ext}"]["get"]["responses"]
    assert {"429", "503"} <= set(image_responses)


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"


def test_page_states_the_limits_it_runs_with(make_app: Callable[..., Flask]) -> None:
    client = make_app(max_upload_bytes=100_000, meme_ttl_seconds=45).test_client()
    html = client.get("/").get_data(as_text=True)
    assert "up to 98 KB." in html
    assert "memes are kept for 45 seconds." in html


def test_page_and_its_assets_come_from_this_server(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    testids = ("file-input", "camera-input", "meme-image", "top-input", "download-png")
    for testid in (*testids, "style-picker", *(f"style-{style}" for style in STYLES)):
        assert f'data-testid="{testid}"' in html
    assert 'capture="user"' in html and 'accept="image/*"' in html
    # A file chooser may not count .heic as an image/* file where the system has no HEIF codec.
    assert 'accept="image/*,.heic,.heif"' in html
    assert 'role="alert"' in html
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert url.startswith(("/", "#", "data:")), f"external asset {url}"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        assert client.get(asset).status_code == 200
