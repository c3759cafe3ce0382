"""Re-render the golden images of ``tests/golden/`` and write a page to review them.

Run after a deliberate change of look (a new style, other type, new spacing):

    .venv/bin/python tools/regenerate_golden.py [NAME ...]

It renders every case of ``tests/golden_cases.py`` (or only those named),
overwrites ``tests/golden/<name>.png``, prints how much each changed from the
reference it replaced, and writes ``tests/golden/index.html``, which shows all
the references side by side for a reviewer to look over before committing
(``git diff`` then shows which files changed; the page stays small because it
only links the PNGs).
"""

from __future__ import annotations

import argparse
import html
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from PIL import Image  # noqa: E402

from golden_cases import CASES, GOLDEN_DIR, difference  # noqa: E402


def _change(name: str, old: bytes | None) -> str:
    """How the new reference differs from the one it replaced, in words."""
    if old is None:
        return "new"
    with Image.open(GOLDEN_DIR / f"{name}.png") as image, Image.open(io.BytesIO(old)) as before:
        if before.size != image.size:
            return f"size was {before.width}×{before.height}, now {image.width}×{image.height}"
        mean, fraction = difference(image, before)
        return f"mean difference {mean:.2f}, {fraction:.2%} of pixels differ"


def _card(name: str) -> str:
    case = CASES[name]
    with Image.open(GOLDEN_DIR / f"{name}.png") as image:
        size = f"{image.width}×{image.height}"
    return (
        f'<figure><img src="{name}.png" alt="{html.escape(case.description)}">'
        f"<figcaption><b>{html.escape(name)}</b> · {case.style} · {size}<br>"
        f"{html.escape(case.description)}</figcaption></figure>"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"cases to redo (default all): {', '.join(CASES)}")
    names = parser.parse_args(argv).names or list(CASES)
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    GOLDEN_DIR.mkdir(exist_ok=True)
    previous: dict[str, bytes | None] = {}
    for name in names:
        path = GOLDEN_DIR / f"{name}.png"
        previous[name] = path.read_bytes() if path.exists() else None
        CASES[name].render().save(path, optimize=True)
        print(f"{path.relative_to(ROOT)}: {_change(name, previous[name])}", file=sys.stderr)
    cards = "\n".join(_card(name) for name in CASES)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>MemeGen golden images</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; background: #f4f5fa; }}
main {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }}
figure {{ margin: 0; padding: 0.6rem; background: #fff; border: 1px solid #ccd; }}
figcaption {{ font-size: 0.85rem; max-width: 360px; margin-top: 0.4rem; }}
</style></head><body>
<h1>MemeGen golden images</h1>
<p>The references in <code>tests/golden/</code> that <code>tests/test_golden.py</code>
compares renders with; written by <code>tools/regenerate_golden.py</code>.</p>
<main>
{cards}
</main></body></html>
"""
    (GOLDEN_DIR / "index.html").write_text(page, encoding="utf-8")
    print(f"review {(GOLDEN_DIR / 'index.html').relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
