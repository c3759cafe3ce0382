"""MemeStore: unguessable ids, no path tricks, atomic writes, time to live, the sweeper."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from memegen.storage import ID_PATTERN, STALE_TEMP_SECONDS, TEMP_PREFIX, MemeStore, is_valid_id


class Clock:
    """A clock the test moves by hand, so expiry needs no sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_save_then_get_and_read(tmp_path: Path) -> None:
    store = MemeStore(tmp_path / "memes", ttl_seconds=3600)
    stored = store.save(b"meme bytes", "png")
    assert ID_PATTERN.fullmatch(stored.id)
    assert stored.path == tmp_path / "memes" / f"{stored.id}.png"
    found = store.get(stored.id)
    assert found is not None and found.suffix == "png"
    assert store.read(found) == b"meme bytes"
    assert os.listdir(tmp_path / "memes") == [f"{stored.id}.png"], "no temporary file remains"


def test_ids_are_unique_and_unguessable(tmp_path: Path) -> None:
    store = MemeStore(tmp_path, ttl_seconds=60)
    ids = {store.save(b"x", "jpg").id for _ in range(200)}
    assert len(ids) == 200
    assert all(len(meme_id) == 22 for meme_id in ids), "128 random bits each"


def test_directory_is_private(tmp_path: Path) -> None:
    store = MemeStore(tmp_path / "new" / "memes", ttl_seconds=60)
    assert store.directory.is_dir()
    assert store.directory.stat().st_mode & 0o077 == 0


def test_directory_removed_while_serving_is_made_again_on_save(tmp_path: Path) -> None:
    store = MemeStore(tmp_path / "memes", ttl_seconds=60)
    (tmp_path / "memes").rmdir()
    stored = store.save(b"meme bytes", "png")
    assert store.read(stored) == b"meme bytes"
    assert store.directory.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "meme_id",
    [
        "",
        "../../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "a" * 21,
        "a" * 23,
        "aaaaaaaaaa/aaaaaaaaaaa",
        "aaaaaaaaaa.aaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaa*",
        "aaaaaaaaaaaaaaaaaaaaa\n",
        "\u0430" * 20 + "aa",  # Cyrillic look-alikes
    ],
)
def test_malformed_ids_are_refused_before_touching_the_disk(tmp_path: Path, meme_id: str) -> None:
    store = MemeStore(tmp_path / "memes", ttl_seconds=60)
    (tmp_path / "secret.png").write_bytes(b"outside the store")
    assert not is_valid_id(meme_id)
    assert store.get(meme_id) is None


def test_unknown_valid_id_is_none(tmp_path: Path) -> None:
    store = MemeStore(tmp_path, ttl_seconds=60)
    assert store.get("A" * 22) is None


def test_bad_suffix_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    store = MemeStore(tmp_path / "memes", ttl_seconds=60)
    for suffix in ("", "png/../x", "PNG", "p.ng", "gif"):
        with pytest.raises(ValueError):
            store.save(b"x", suffix)
    assert os.listdir(tmp_path / "memes") == []


def test_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    store = MemeStore(tmp_path / "memes", ttl_seconds=60)
    with pytest.raises(TypeError):
        store.save("text, not bytes", "png")  # type: ignore[arg-type]
    assert os.listdir(tmp_path / "memes") == []


def test_meme_expires_on_read_and_its_file_goes(tmp_path: Path) -> None:
    clock = Clock()
    store = MemeStore(tmp_path, ttl_seconds=3600, clock=clock)
    stored = store.save(b"x", "png")
    assert stored.expires_at == clock.now + 3600
    clock.now += 3599
    assert store.get(stored.id) is not None
    assert store.seconds_left(stored) == 1
    clock.now += 1
    assert store.get(stored.id) is None
    assert not stored.path.exists()


def test_zero_ttl_means_gone_at_once(tmp_path: Path) -> None:
    store = MemeStore(tmp_path, ttl_seconds=0)
    assert store.get(store.save(b"x", "png").id) is None


def test_negative_ttl_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        MemeStore(tmp_path, ttl_seconds=-1)


def test_cleanup_removes_expired_memes_and_stale_temp_files_only(tmp_path: Path) -> None:
    clock = Clock()
    store = MemeStore(tmp_path, ttl_seconds=3600, clock=clock)
    old = store.save(b"old", "png")
    clock.now += 1800
    fresh = store.save(b"fresh", "jpg")
    stale_temp = tmp_path / f"{TEMP_PREFIX}crashed.part"
    stale_temp.write_bytes(b"half a meme")
    os.utime(stale_temp, (clock.now - STALE_TEMP_SECONDS, clock.now - STALE_TEMP_SECONDS))
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("not ours")
    os.utime(unrelated, (0, 0))
    foreign = tmp_path / f"{'A' * 22}.gif"
    foreign.write_bytes(b"a suffix this store does not make")
    os.utime(foreign, (0, 0))

    clock.now += 1800
    live_temp = tmp_path / f"{TEMP_PREFIX}writing.part"
    live_temp.write_bytes(b"being written")
    os.utime(live_temp, (clock.now - 1, clock.now - 1))
    assert store.cleanup() == 2
    assert not old.path.exists()
    assert not stale_temp.exists()
    assert fresh.path.exists()
    assert live_temp.exists(), "a write in progress is not swept"
    assert unrelated.exists(), "files that are not memes are left alone"
    assert foreign.exists()


def test_cleanup_passes_over_a_folder_it_cannot_delete_and_sweeps_the_rest(tmp_path: Path) -> None:
    """One entry the sweep cannot remove used to end every sweep before the memes after it."""
    clock = Clock()
    store = MemeStore(tmp_path, ttl_seconds=60, clock=clock)
    memes = [store.save(b"meme", "png") for _ in range(5)]
    for name in (f"{TEMP_PREFIX}folder", f"{'B' * 22}.png"):
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (0, 0))
    clock.now += STALE_TEMP_SECONDS + 60
    assert store.cleanup() == 5
    assert not any(meme.path.exists() for meme in memes)
    left = sorted(path.name for path in tmp_path.iterdir())
    assert left == [f"{TEMP_PREFIX}folder", f"{'B' * 22}.png"]


def test_a_folder_where_no_file_can_be_made_is_refused_at_once() -> None:
    """/proc/self exists and takes no new files, for root too: as a read-only disk would."""
    with pytest.raises(OSError):
        MemeStore(Path("/proc/self"), ttl_seconds=60)


def test_background_sweeper_removes_expired_memes_and_stops(tmp_path: Path) -> None:
    clock = Clock()
    store = MemeStore(tmp_path, ttl_seconds=60, clock=clock)
    stored = store.save(b"x", "png")
    store.start_cleanup(interval_seconds=0.01)
    try:
        assert store.cleanup_running
        clock.now += 60
        deadline = time.monotonic() + 5
        while stored.path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not stored.path.exists()
    finally:
        store.stop_cleanup()
    assert not store.cleanup_running
    clock.now += 60
    kept = store.save(b"y", "png")
    time.sleep(0.05)
    assert kept.path.exists(), "a stopped sweeper sweeps no more"


def test_read_after_removal_is_none(tmp_path: Path) -> None:
    store = MemeStore(tmp_path, ttl_seconds=60)
    stored = store.save(b"x", "png")
    stored.path.unlink()
    assert store.read(stored) is None
    assert store.get(stored.id) is None
