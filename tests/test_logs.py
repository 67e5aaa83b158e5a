"""Operators' logs: one voice per site for content problems, across forked workers."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from blog.logs import SiteVoice
from tests.conftest import AppFactory, WritePost


def _in_child(voice: SiteVoice, hold: int | None, release: int | None) -> tuple[int, int]:
    """Fork a process that reports voice.speaks() on a pipe, then (if ``hold``) waits to be let go."""
    answer_read, answer_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(answer_write, b"1" if voice.speaks() else b"0")
            if hold is not None:
                os.read(hold, 1)
        finally:
            os._exit(0)
    os.close(answer_write)
    return pid, answer_read


def test_one_worker_speaks_for_the_site_and_another_takes_over() -> None:
    voice = SiteVoice()
    assert voice.speaks()  # the loading process (gunicorn's master) logs what the load finds
    hold_read, hold_write = os.pipe()
    first, first_answer = _in_child(voice, hold_read, None)
    assert os.read(first_answer, 1) == b"1"
    second, second_answer = _in_child(voice, None, None)
    assert os.read(second_answer, 1) == b"0"  # the first worker is still alive and speaking
    os.waitpid(second, 0)
    os.write(hold_write, b"x")  # the first worker ends: its lock goes with it
    os.waitpid(first, 0)
    third, third_answer = _in_child(voice, None, None)
    assert os.read(third_answer, 1) == b"1"
    os.waitpid(third, 0)


def test_a_silent_worker_logs_no_problem_the_speaking_one_logs(make_app: AppFactory, write_post: WritePost,
                                                             posts_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_post("2020-01-01-fine.md", title="Fine")
    app = make_app()
    store = app.extensions["quire"]
    write_post("undated.md", title="Undated")
    (posts_dir / "2020-01-01-fine.md").unlink()
    store.speaks = lambda: False  # another worker holds the site's voice
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="quire"):
        store.refresh()
    assert [record.getMessage() for record in caplog.records if record.name == "quire.content"] == []
    assert [problem.code for problem in store.problems()] == ["undated"]  # still known, for /healthz and check
    write_post("2020-01-02-broken.md", raw="---\ntitle: [oops\n---\n")
    store.speaks = lambda: True
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="quire"):
        store.refresh()
    assert [record.getMessage().split(":")[0] for record in caplog.records if record.name == "quire.content"] == ["2020-01-02-broken.md"]
