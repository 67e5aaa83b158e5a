"""Live content: every kind of change on disk reaches readers through the watcher, with no request scanning."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AppFactory, WritePost, eventually

MODES = ["inotify", "poll"]


@pytest.fixture(params=MODES)
def live(request: pytest.FixtureRequest, make_app: AppFactory) -> Iterator[FlaskClient]:
    app = make_app(BLOG_WATCH=request.param, BLOG_POLL_INTERVAL_MS="100")
    client = app.test_client()
    client.get("/")  # the first request starts this process's watcher
    assert app.extensions["quire.watcher"].active_mode == request.param
    yield client


def shows(client: FlaskClient, path: str, text: str) -> bool:
    response = client.get(path)
    return response.status_code == 200 and text in response.get_data(as_text=True)


def post_text(title: str, body: str = "Body.") -> str:
    return f"---\ntitle: {title}\n---\n{body}\n"


def test_new_post_appears(live: FlaskClient, posts_dir: Path) -> None:
    (posts_dir / "2020-01-01-fresh.md").write_text(post_text("Fresh"), encoding="utf-8")
    eventually(lambda: shows(live, "/", "Fresh"))
    assert shows(live, "/posts/fresh/", "Fresh")


def test_edit_in_place(live: FlaskClient, write_post: WritePost) -> None:
    path = write_post("2020-01-01-edit.md", "Version one.", title="Edit")
    eventually(lambda: shows(live, "/posts/edit/", "Version one."))
    with path.open("r+", encoding="utf-8") as handle:  # same inode, same size: only mtime_ns tells
        text = handle.read().replace("Version one.", "Version two.")
        handle.seek(0)
        handle.write(text)
    eventually(lambda: shows(live, "/posts/edit/", "Version two."))


def test_atomic_rename_replaces_post(live: FlaskClient, write_post: WritePost, posts_dir: Path) -> None:
    write_post("2020-01-01-swap.md", "Old text.", title="Swap")
    eventually(lambda: shows(live, "/posts/swap/", "Old text."))
    temporary = posts_dir / ".2020-01-01-swap.md.tmp"
    temporary.write_text(post_text("Swap", "New text."), encoding="utf-8")
    os.replace(temporary, posts_dir / "2020-01-01-swap.md")
    eventually(lambda: shows(live, "/posts/swap/", "New text."))


def test_half_written_file_keeps_last_good_version(live: FlaskClient, write_post: WritePost) -> None:
    path = write_post("2020-01-01-half.md", "Complete body.", title="Half")
    eventually(lambda: shows(live, "/posts/half/", "Complete body."))
    path.write_text("---\ntitle: Ha", encoding="utf-8")  # front matter cut off mid-write
    eventually(lambda: live.application.extensions["quire"].snapshot.problems)
    assert shows(live, "/posts/half/", "Complete body.")
    path.write_text(post_text("Half", "Finished body."), encoding="utf-8")
    eventually(lambda: shows(live, "/posts/half/", "Finished body."))


def test_deleted_post_disappears(live: FlaskClient, write_post: WritePost) -> None:
    path = write_post("2020-01-01-gone.md", title="Gone")
    eventually(lambda: shows(live, "/posts/gone/", "Gone"))
    path.unlink()
    eventually(lambda: live.get("/posts/gone/").status_code == 404)
    assert "Gone" not in live.get("/").get_data(as_text=True)


def test_new_folder_of_posts(live: FlaskClient, posts_dir: Path) -> None:
    folder = posts_dir / "2024" / "spring"
    folder.mkdir(parents=True)
    (folder / "2024-03-01-nested.md").write_text(post_text("Nested"), encoding="utf-8")
    eventually(lambda: shows(live, "/posts/nested/", "Nested"))


def test_renamed_folder(live: FlaskClient, posts_dir: Path) -> None:
    (posts_dir / "old").mkdir()
    (posts_dir / "old" / "2020-01-01-moved.md").write_text(post_text("Moved"), encoding="utf-8")
    eventually(lambda: shows(live, "/posts/moved/", "Moved"))
    (posts_dir / "old").rename(posts_dir / ".archived")
    eventually(lambda: live.get("/posts/moved/").status_code == 404)


def test_requests_never_scan_the_posts_folder(make_app: AppFactory, write_post: WritePost,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for day in range(1, 6):
        write_post(f"2020-01-0{day}-p{day}.md", title=f"P{day}", categories=["c"])
    app: Flask = make_app(BLOG_WATCH="off")
    client = app.test_client()
    calls: list[str] = []
    for name in ("walk", "scandir", "stat", "lstat", "listdir"):
        original = getattr(os, name)

        def spy(*args: object, _original=original, _name=name, **kwargs: object):  # type: ignore[no-untyped-def]
            if args and str(args[0]).startswith(app.config["BLOG_POSTS_DIR"]):
                calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(os, name, spy)
    for path in ["/", "/posts/p3/", "/category/c/", "/categories/", "/page/1/", "/nope/"]:
        client.get(path)
        client.get(path)
    assert calls == []


def test_only_changed_files_are_read_again(make_app: AppFactory, write_post: WritePost,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [write_post(f"2020-01-0{day}-p{day}.md", title=f"P{day}") for day in range(1, 6)]
    store = make_app().extensions["quire"]
    reads: list[str] = []
    original = store.pages.read
    monkeypatch.setattr(store.pages, "read", lambda relative, limit: reads.append(relative) or original(relative, limit))
    store.refresh()
    assert reads == []
    paths[2].write_text("---\ntitle: Changed\n---\nNew.\n", encoding="utf-8")
    store.refresh()
    assert reads == ["2020-01-03-p3.md"]
    generation = store.generation
    store.refresh(["2020-01-01-p1.md"])  # an event for an unchanged file publishes nothing new
    assert reads == ["2020-01-03-p3.md"] and store.generation == generation


def test_a_deleted_posts_folder_is_watched_again_when_it_comes_back(live: FlaskClient, write_post: WritePost,
                                                                   posts_dir: Path) -> None:
    write_post("2020-01-01-first.md", title="First post")
    eventually(lambda: shows(live, "/", "First post"))
    shutil.rmtree(posts_dir)  # what `git rm posts/*.md` does to a folder it empties
    eventually(lambda: not shows(live, "/", "First post"))
    posts_dir.mkdir()
    (posts_dir / "2020-02-01-second.md").write_text(post_text("Second post"), encoding="utf-8")
    eventually(lambda: shows(live, "/", "Second post"))
    (posts_dir / "2020-03-01-third.md").write_text(post_text("Third post"), encoding="utf-8")
    eventually(lambda: shows(live, "/", "Third post"))


def test_a_posts_folder_renamed_away_and_made_anew_is_the_one_watched(live: FlaskClient, write_post: WritePost,
                                                                      posts_dir: Path) -> None:
    write_post("2020-01-01-first.md", title="First post")
    eventually(lambda: shows(live, "/", "First post"))
    old = posts_dir.with_name("posts.old")
    posts_dir.rename(old)  # mv posts posts.old && mkdir posts
    posts_dir.mkdir()
    (posts_dir / "2020-02-01-second.md").write_text(post_text("Second post"), encoding="utf-8")
    eventually(lambda: shows(live, "/", "Second post") and not shows(live, "/", "First post"))
    (old / "2020-03-01-elsewhere.md").write_text(post_text("Written elsewhere"), encoding="utf-8")
    (posts_dir / "2020-04-01-third.md").write_text(post_text("Third post"), encoding="utf-8")
    eventually(lambda: shows(live, "/", "Third post"))
    assert not shows(live, "/", "Written elsewhere")


def test_an_inotify_queue_overflow_rescans_at_once(make_app: AppFactory, posts_dir: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent

    app = make_app(BLOG_WATCH="inotify")
    client = app.test_client()
    client.get("/")
    watcher = app.extensions["quire.watcher"]
    assert watcher.active_mode == "inotify"
    watcher.notify = lambda path: None  # the kernel's queue is full: this file's events are lost
    (posts_dir / "2020-01-01-lost.md").write_text(post_text("Lost in the overflow"), encoding="utf-8")
    # What the kernel then queues, as watchdog's reader receives it (wd -1: no watch of its own)
    overflow = InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b"")
    watcher._observer._inotify_fd.handle_event(overflow)
    eventually(lambda: shows(client, "/", "Lost in the overflow"))  # not the safety rescan, minutes away
    assert any("inotify queue overflowed" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("later", [False, True])
def test_a_watcher_catches_up_with_changes_made_since_the_load(make_app: AppFactory, write_post: WritePost,
                                                               monkeypatch: pytest.MonkeyPatch, later: bool) -> None:
    write_post("2021-01-01-loaded.md", title="Loaded")
    app = make_app(BLOG_WATCH="poll", BLOG_POLL_INTERVAL_MS="60000")  # no poll in the test's time
    write_post("2021-01-02-since.md", title="Since")  # as between gunicorn's master's load and a worker's start
    store = app.extensions["quire"]
    threads: list[str] = []
    refresh = store.refresh
    monkeypatch.setattr(store, "refresh", lambda *args, **options: threads.append(threading.current_thread().name)
                        or refresh(*args, **options))
    watchers = app.extensions["quire.watchers"]
    watchers.catch_up_later = later
    watchers.ensure_running()
    if not later:
        assert threads[:1] == [threading.current_thread().name]  # before serving anything
    eventually(lambda: store.post_at("/posts/since/") is not None)
    assert threads[0] == ("quire-watch" if later else threading.current_thread().name)


@pytest.mark.parametrize("later", [False, True])
def test_the_workers_of_a_start_begin_watching_in_the_background(make_app: AppFactory, write_post: WritePost,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  later: bool) -> None:
    """inotify's set-up lists the folder (0.2 s at 100,000 posts): a worker of the start serves meanwhile."""
    write_post("2021-01-01-loaded.md", title="Loaded")
    app = make_app(BLOG_WATCH="inotify")
    watcher = app.extensions["quire.watcher"]
    begun: list[str] = []
    start_inotify = watcher._start_inotify
    monkeypatch.setattr(watcher, "_start_inotify", lambda: begun.append(threading.current_thread().name)
                        or start_inotify())
    write_post("2021-01-02-before.md", title="Before")  # before the watch began: the catch-up finds it
    watchers = app.extensions["quire.watchers"]
    watchers.catch_up_later = later
    watchers.ensure_running()
    eventually(lambda: bool(begun) and watcher.active_mode == "inotify")
    assert begun == ["quire-watch" if later else threading.current_thread().name]
    store = app.extensions["quire"]
    eventually(lambda: store.post_at("/posts/before/") is not None)
    write_post("2021-01-03-after.md", title="After")  # after: inotify tells
    eventually(lambda: store.post_at("/posts/after/") is not None)
