"""The server's resident memory across big uploads: one at a time, then four at once,
then after a few idle seconds. Each reading waits half a second after the response, the
time the server takes to give the request's memory back once the response is sent.

    python benchmarks/server_memory.py [--rounds 2]

The photos are the astronaut at 40 MP (PNG), 24 MP (progressive JPEG) and 12 MP
(baseline JPEG), with a little noise so that they do not compress to nothing. The design
aims for one process under 250 MB. Memory is read from /proc (Linux).
"""

from __future__ import annotations

import argparse
import io
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
from PIL import Image
from pipeline import PHOTO, multipart, post_meme, resident_mb, running_server

PHOTOS = {
    "40 MP PNG": ((7300, 5475), {"format": "PNG", "compress_level": 1}),
    "24 MP progressive JPEG": ((6000, 4000), {"format": "JPEG", "quality": 92,
                                              "progressive": True}),
    "12 MP JPEG": ((4000, 3000), {"format": "JPEG", "quality": 92}),
}
IDLE_SECONDS = 3
SETTLE_SECONDS = 0.5


def settled_mb(pid: int) -> float:
    time.sleep(SETTLE_SECONDS)
    return resident_mb(pid)


def noisy_photo(size: tuple[int, int], save_options: dict) -> bytes:
    with Image.open(PHOTO) as image:
        pixels = np.asarray(image.convert("RGB").resize(size)).copy()
    pixels ^= np.random.default_rng(0).integers(0, 8, pixels.shape, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, **save_options)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="times each photo is sent alone")
    args = parser.parse_args()
    forms = {name: multipart(noisy_photo(*spec)) for name, spec in PHOTOS.items()}
    biggest = max(len(body) for body, _ in forms.values())
    with running_server(MEMEGEN_MAX_UPLOAD_BYTES=str(biggest)) as (server, base, _):
        print(f"{'after':<44}{'resident MB':>12}")
        print(f"{'start-up':<44}{resident_mb(server.pid):>12.0f}")
        for round_number in range(1, args.rounds + 1):
            for name, form in forms.items():
                post_meme(base, form)
                print(f"{f'{name}, round {round_number}':<44}{settled_mb(server.pid):>12.0f}")
        together = [*forms.values(), forms["40 MP PNG"]]
        with ThreadPoolExecutor(len(together)) as pool:
            list(pool.map(partial(post_meme, base), together))  # raises if one failed
        print(f"{'four at once':<44}{settled_mb(server.pid):>12.0f}")
        time.sleep(IDLE_SECONDS)
        print(f"{f'{IDLE_SECONDS} s idle':<44}{resident_mb(server.pid):>12.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
