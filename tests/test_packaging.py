"""The packaging carries what the installed app needs, without building a wheel.

An editable install reads every file from the checkout, so a model, font, caption file,
template or licence that pyproject.toml's package-data misses only shows up once MemeGen is
installed from a wheel. These tests read pyproject.toml and MANIFEST.in the way setuptools
does and compare them with the files on disk.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "memegen"
ASSETS = PACKAGE / "assets"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _files(folder: Path) -> set[Path]:
    return {
        path
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_package_data_covers_every_data_file_of_the_package():
    # setuptools expands package-data with glob, relative to the package: `*` stays in one
    # folder, so a file in a new subfolder needs a pattern of its own.
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["memegen"]
    shipped = {path for pattern in patterns for path in PACKAGE.glob(pattern) if path.is_file()}
    data = {path for path in _files(PACKAGE) if path.suffix != ".py"}
    assert data, "no data files found under src/memegen"
    missing = sorted(str(path.relative_to(PACKAGE)) for path in data - shipped)
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


def test_licence_metadata_names_every_bundled_licence():
    licence_files = {
        path for pattern in PYPROJECT["project"]["license-files"] for path in ROOT.glob(pattern)
    }
    texts = {ASSETS / "NOTICE"} | {
        path for path in _files(ASSETS) if path.name.startswith(("LICENSE", "OFL"))
    }
    assert len(texts) > 1
    missing = sorted(str(path.relative_to(ROOT)) for path in texts - licence_files)
    assert not missing, f"not in [project] license-files: {missing}"
    expression = PYPROJECT["project"]["license"].split(" AND ")
    assert sorted(expression) == ["Apache-2.0", "MIT", "OFL-1.1"]


#: Folders the sdist carries whole: the tests, and what the README and their messages name.
SDIST_FOLDERS = ("tests", "docs", "benchmarks", "tools")


def test_sdist_carries_the_tests_docs_benchmarks_and_tools(monkeypatch: pytest.MonkeyPatch):
    # Without MANIFEST.in setuptools puts only tests/test_*.py in the sdist, which then
    # lacks conftest.py, the helpers, the test photo and the golden renders.
    egg_info = pytest.importorskip("setuptools.command.egg_info")
    manifest = ROOT / "MANIFEST.in"
    assert manifest.is_file(), "MANIFEST.in is missing"
    monkeypatch.chdir(ROOT)
    file_list = egg_info.FileList()
    for line in manifest.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            file_list.process_template_line(line)
    in_sdist = {ROOT / name for name in file_list.files}
    wanted = set().union(*(_files(ROOT / folder) for folder in SDIST_FOLDERS))
    missing = sorted(str(path.relative_to(ROOT)) for path in wanted - in_sdist)
    assert not missing, f"not in the sdist: {missing}"
    assert ROOT / "Makefile" in in_sdist


def test_the_version_is_the_one_pyproject_declares():
    from memegen import __version__

    assert __version__ == PYPROJECT["project"]["version"]


def test_the_training_extra_is_what_train_names_when_a_module_is_missing():
    from memegen.training.commands import TRAINING_EXTRA

    requirements = PYPROJECT["project"]["optional-dependencies"]["train"]
    names = {re.split(r"[<>=!~ \[;]", requirement, maxsplit=1)[0] for requirement in requirements}
    assert names == set(TRAINING_EXTRA)
