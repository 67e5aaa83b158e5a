"""Live faults: the store's quiet rule for files still being written, and bench/faults.py in its short mode."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.faults import partial_tokens
from tests.conftest import AppFactory, WritePost

ROOT = Path(__file__).resolve().parent.parent


def test_a_file_modified_within_the_quiet_time_keeps_its_last_good_version(make_app: AppFactory,
                                                                            write_post: WritePost) -> None:
    path = write_post("2024-01-01-post.md", "First version.", title="Post")
    os.utime(path, (time.time() - 60, time.time() - 60))
    store = make_app().extensions["quire"]
    assert "First version." in store.snapshot.posts[0].html  # served once, so its rendering is kept
    write_post("2024-01-01-post.md", "Half of the sec", title="Post")  # just written: maybe still being written
    assert store.refresh(["2024-01-01-post.md"], quiet=60) is False
    assert store.take_unsettled() == {"2024-01-01-post.md"} and store.take_unsettled() == set()
    assert "First version." in store.snapshot.posts[0].html
    os.utime(path, (time.time() - 61, time.time() - 61))  # quiet since: read now
    assert store.refresh(["2024-01-01-post.md"], quiet=60) is True
    assert store.snapshot.posts[0].body.strip() == "Half of the sec"
    assert "Half of the sec" in store.snapshot.posts[0].html


def test_a_new_file_waits_for_quiet_too(make_app: AppFactory, write_post: WritePost) -> None:
    store = make_app().extensions["quire"]
    write_post("2024-01-01-new.md", "New.", title="New")
    assert store.refresh(None, quiet=60) is False and store.snapshot.posts == ()
    assert store.take_unsettled() == {"2024-01-01-new.md"}
    assert store.refresh(None) is True and len(store.snapshot.posts) == 1  # without quiet (tests, start-up)


@pytest.mark.parametrize(("body", "partial"), [
    ("HALF-0123456789ab text END-0123456789ab", []),
    ("HALF-0123456789ab text", ["0123456789ab"]),
    ("front matter CUT-0123456789ab", ["0123456789ab"]),
    ("nothing here", []),
])
def test_partial_detection(body: str, partial: list[str]) -> None:
    assert partial_tokens(body) == partial


@pytest.mark.slow
def test_faults_under_load_short_mode(capsys: pytest.CaptureFixture[str]) -> None:
    result = subprocess.run([sys.executable, "bench/faults.py", "--seconds", "30"], cwd=ROOT, capture_output=True,
                            text=True, timeout=240)
    with capsys.disabled():  # the figures belong in the CI log
        print("\n" + result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "errors: 0" in result.stdout
