"""Per-stage medians of the pipeline on a 1 MP and a 12 MP photo, one thread, the
whole request through the real HTTP server (with its start-up time and memory), and
an animated meme of 60 frames with a plain caption and with one of 60 emoji a side.

    python benchmarks/pipeline.py [--repeat 20] [--skip-server]

Timings are medians over repeats after one warm-up (``total`` is the median of each
run's sum of stages, not the sum of the medians); the machine is shared, so
compare ratios between runs on the same machine rather than absolute numbers.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
from PIL import Image

from memegen.config import Settings
from memegen.imaging import encode
from memegen.pipeline import Analysis, Pipeline
from memegen.render import render_meme

PHOTO = Path(__file__).resolve().parent.parent / "tests" / "data" / "astronaut.jpg"
SIZES = {"1 MP": (1155, 866), "12 MP": (4000, 3000)}


def photo_of_size(size: tuple[int, int]) -> bytes:
    """The astronaut photo resized to ``size`` and saved as an ordinary camera JPEG."""
    with Image.open(PHOTO) as image:
        resized = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    resized.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def time_stages(pipeline: Pipeline, data: bytes, repeat: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {}

    def timed(stage: str, action):
        started = time.perf_counter()
        result = action()
        samples.setdefault(stage, []).append((time.perf_counter() - started) * 1000)
        return result

    for _ in range(repeat + 1):
        photo = timed("decode", lambda: pipeline.load(data))
        faces = timed("detect", lambda photo=photo: pipeline.detect(photo))
        readings = timed("classify", lambda p=photo, f=faces: pipeline.classify(p, f))
        analysis = Analysis(photo.width, photo.height, readings)
        caption, _ = pipeline.pick_caption(analysis, seed=1)
        meme = timed(
            "render",
            lambda p=photo, c=caption: render_meme(
                Image.fromarray(p.pixels), c, max_side=pipeline.settings.output_max_side
            ),
        )
        timed("encode", lambda m=meme: encode(m, "jpeg"))
    medians = {stage: statistics.median(values[1:]) for stage, values in samples.items()}
    totals = [sum(values[i] for values in samples.values()) for i in range(1, repeat + 1)]
    medians["total"] = statistics.median(totals)
    return medians


ANIMATION_FRAMES = 60


def animated_upload() -> bytes:
    """A 320×240 GIF of ``ANIMATION_FRAMES`` frames, each a different shade."""
    frames = [
        Image.new("RGB", (320, 240), (index * 4, 90, 160)) for index in range(ANIMATION_FRAMES)
    ]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    return buffer.getvalue()


def time_animated(pipeline: Pipeline, repeat: int) -> dict[str, float]:
    """Median ms of a whole animated meme (modern style, as GIF). The emoji caption is
    another emoji each run, so no run finds the previous one's layout already made."""
    data = animated_upload()
    samples: dict[str, list[float]] = {"plain caption": [], "60 emoji a side": []}
    for run in range(repeat + 1):
        emoji = chr(0x1F600 + run % 64) * 60
        for label, text in (("plain caption", "when it loops"), ("60 emoji a side", emoji)):
            started = time.perf_counter()
            meme = pipeline.make_meme(data, top=text, bottom=text, style="modern", animate=True)
            meme.encode("gif")
            samples[label].append((time.perf_counter() - started) * 1000)
    return {label: statistics.median(values[1:]) for label, values in samples.items()}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def multipart(data: bytes) -> tuple[bytes, str]:
    """A form upload of ``data`` as the image field: the body and its content type."""
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
        f"filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_meme(base: str, form: tuple[bytes, str]) -> dict:
    """POST a :func:`multipart` ``form`` to ``base``'s /api/v1/memes; the meme's description."""
    body, content_type = form
    request = urllib.request.Request(
        f"{base}/api/v1/memes", data=body, headers={"Content-Type": content_type}
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.load(response)


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def running_server(**env: str) -> Iterator[tuple[subprocess.Popen, str, float]]:
    """``memegen serve`` on a free port with a temporary store and no rate limit: the
    process, its base URL and the ms it took to answer /healthz the first time."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as storage:
        environment = {
            **os.environ,
            "MEMEGEN_STORAGE_DIR": storage,
            "MEMEGEN_RATE_LIMIT_PER_MINUTE": "0",
            **env,
        }
        started = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "memegen", "serve", "--port", str(port)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            while True:
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=1)
                    break
                except OSError:
                    if server.poll() is not None:
                        raise RuntimeError("the server exited during start-up") from None
                    time.sleep(0.02)
            yield server, base, (time.perf_counter() - started) * 1000
        finally:
            server.terminate()
            server.wait(timeout=10)


def time_server(photos: dict[str, bytes], repeat: int) -> dict[str, float]:
    with running_server() as (server, base, startup_ms):
        results = {"start-up to first answer (ms)": startup_ms}
        for name, data in photos.items():
            form = multipart(data)
            samples = []
            for _ in range(repeat + 1):
                began = time.perf_counter()
                meme = post_meme(base, form)
                samples.append((time.perf_counter() - began) * 1000)
            results[f"POST /api/v1/memes {name} (ms)"] = statistics.median(samples[1:])
            assert meme["faces"], "the benchmark photo should have a face"
        results["server resident memory (MB)"] = resident_mb(server.pid)
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()

    cv2.setNumThreads(1)
    started = time.perf_counter()
    pipeline = Pipeline(Settings.from_env())
    print(f"pipeline start-up (models loaded): {(time.perf_counter() - started) * 1000:.0f} ms")
    photos = {name: photo_of_size(size) for name, size in SIZES.items()}

    stages = ["decode", "detect", "classify", "render", "encode", "total"]
    print(f"\n{'stage (median ms)':<20}" + "".join(f"{name:>10}" for name in photos))
    results = {name: time_stages(pipeline, data, args.repeat) for name, data in photos.items()}
    for stage in stages:
        print(f"{stage:<20}" + "".join(f"{results[name][stage]:>10.1f}" for name in photos))

    print(f"\nanimated meme, {ANIMATION_FRAMES} frames (median ms)")
    for label, value in time_animated(pipeline, args.repeat).items():
        print(f"{label:<20}{value:>10.1f}")

    if not args.skip_server:
        print()
        for label, value in time_server(photos, args.repeat).items():
            print(f"{label:<40}{value:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
