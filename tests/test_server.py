"""The real server (``python -m memegen serve``, waitress) stopping and staying responsive."""

from __future__ import annotations

import http.client
import signal
import socket
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from live_server import live_server
from sample_images import black_png


def multipart_form(photo: bytes) -> tuple[bytes, str]:
    """A form upload of ``photo``: the body and its content type."""
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="p.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + photo + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_photo(base: str, photo: bytes) -> int:
    """POST ``photo`` to /api/v1/memes; the HTTP status."""
    body, content_type = multipart_form(photo)
    connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=120)
    connection.request("POST", "/api/v1/memes", body, {"Content-Type": content_type})
    return connection.getresponse().status


def test_sigterm_finishes_the_request_in_progress_then_exits_0(tmp_path: Path):
    """systemd, ``docker stop`` and Kubernetes stop a server with SIGTERM, which used to
    kill it at once and drop the uploads in progress."""
    photo = black_png(6000, 6000)  # 36 MP: reading it takes a while
    statuses: list[int] = []
    with live_server(tmp_path) as (process, base):
        upload = threading.Thread(target=lambda: statuses.append(post_photo(base, photo)))
        upload.start()
        time.sleep(0.5)  # the request is read and at work
        process.send_signal(signal.SIGTERM)
        upload.join(timeout=120)
        assert process.wait(timeout=30) == 0, (tmp_path / "server.log").read_text()
    assert statuses == [201]
    assert [path.suffix for path in (tmp_path / "memes").iterdir()] == [".jpg"]


def test_the_page_answers_while_every_work_slot_is_taken(tmp_path: Path):
    """Costly requests hold at most the slots and the line; the spare threads serve the
    page and the health check, and an upload that finds no turn is 503 at once."""
    photo = black_png(6000, 6000)
    statuses: list[int] = []
    with live_server(tmp_path, MEMEGEN_THREADS="1") as (_, base):
        uploads = [threading.Thread(target=lambda: statuses.append(post_photo(base, photo)))
                   for _ in range(6)]
        for upload in uploads:
            upload.start()
        time.sleep(0.5)
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"{base}/", timeout=5) as response:
            assert response.status == 200
        for upload in uploads:
            upload.join(timeout=120)
    assert sorted(statuses) == [201, 201] + [503] * 4


def test_a_photo_whose_client_hung_up_while_in_line_is_not_made(tmp_path: Path):
    """Nobody would get that meme: the slot goes to the next photo instead."""
    photo = black_png(6000, 6000)
    statuses: list[int] = []
    with live_server(tmp_path, MEMEGEN_THREADS="1") as (_, base):
        first = threading.Thread(target=lambda: statuses.append(post_photo(base, photo)))
        first.start()
        time.sleep(0.3)  # the first photo holds the only slot
        body, content_type = multipart_form(black_png(64, 64))
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as client:
            client.sendall(
                f"POST /api/v1/memes HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}"
                f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
            )
        first.join(timeout=120)
        # The hung-up request had its turn before this one could have had it.
        statuses.append(post_photo(base, black_png(64, 64)))
    assert statuses == [201, 201]
    assert len(list((tmp_path / "memes").iterdir())) == 2


def test_serve_puts_back_the_sigterm_handler_it_found(make_app) -> None:
    """A process that calls serve() (a test, an app embedding MemeGen) keeps its own."""
    from memegen.web.server import serve

    previous = signal.getsignal(signal.SIGTERM)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            serve(make_app(), "127.0.0.1", taken.getsockname()[1])
    assert signal.getsignal(signal.SIGTERM) is previous


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_big_photos_memory_goes_back_to_the_system_after_its_request(tmp_path: Path):
    """glibc used to keep each photo's pixels in the heap of the thread that read it: the
    server grew by about 64 MB with every 36 MP photo a new thread took, and kept it. The
    memory is given back just after each response is sent, so the test waits for it."""
    photo = black_png(6000, 6000)
    with live_server(tmp_path) as (process, base):
        assert post_photo(base, photo) == 201
        time.sleep(1)
        after_one = resident_mb(process.pid)
        for _ in range(5):
            assert post_photo(base, photo) == 201
        deadline = time.monotonic() + 10
        while (grown := resident_mb(process.pid) - after_one) >= 60:
            if time.monotonic() > deadline:
                pytest.fail(f"the server kept {grown:.0f} MB more after five more photos")
            time.sleep(0.1)
