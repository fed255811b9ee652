"""``publish_dir``: a cache folder exists only once complete, whatever happens while it is filled."""

import os
import time

from translator.durable_files import STALE_TEMP_SECONDS, publish_dir


def _fill(tmp):
    (tmp / "a.json").write_text("{}")


def test_a_failed_fill_leaves_neither_the_folder_nor_a_temp(tmp_path):
    dest = tmp_path / "cache" / "tok"

    def broken(tmp):
        _fill(tmp)
        raise OSError("disk full")

    error = publish_dir(dest, broken)
    assert isinstance(error, OSError) and "disk full" in str(error)
    assert not dest.exists() and os.listdir(dest.parent) == []


def test_an_existing_folder_is_kept_unless_it_is_to_be_replaced(tmp_path):
    dest = tmp_path / "tok"
    dest.mkdir()
    (dest / "old").write_text("damaged")
    assert publish_dir(dest, _fill) is None  # a concurrent run's copy is as good: kept
    assert sorted(os.listdir(dest)) == ["old"]
    assert publish_dir(dest, _fill, replace=True) is None
    assert sorted(os.listdir(dest)) == ["a.json"]
    assert sorted(os.listdir(tmp_path)) == ["tok"]


def test_temps_of_killed_runs_are_removed_and_a_live_one_is_not(tmp_path):
    dest = tmp_path / "tok"
    dead, live = tmp_path / ".tok.dead.tmp", tmp_path / ".tok.live.tmp"
    dead.mkdir()
    live.mkdir()
    old = time.time() - STALE_TEMP_SECONDS - 5
    os.utime(dead, (old, old))
    assert publish_dir(dest, _fill) is None
    assert sorted(os.listdir(tmp_path)) == [".tok.live.tmp", "tok"]
