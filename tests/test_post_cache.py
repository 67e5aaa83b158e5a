"""The post cache: a restart reads unchanged posts from it, and anything doubtful is parsed afresh."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import pytest
from flask import Flask

from blog.content import post as post_module
from blog.content.pages import FileChanging, PostPages
from tests.conftest import AppFactory, WritePost, eventually


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every post file read from disk."""
    found: list[str] = []
    original = PostPages.read

    def read(self: PostPages, relative: str, limit: int):  # type: ignore[no-untyped-def]
        found.append(relative)
        return original(self, relative, limit)

    monkeypatch.setattr(PostPages, "read", read)
    return found


def cache_file(cache_dir: Path) -> Path:
    return eventually(lambda: next(iter(cache_dir.glob("posts-*.pickle")), None))


def start(make_app: AppFactory, cache_dir: Path, **settings: str) -> Flask:
    return make_app(BLOG_CACHE_DIR=str(cache_dir), **settings)


def summary(app: Flask) -> list[tuple[str, str, str, tuple[str, ...]]]:
    client = app.test_client()
    return [(post.url, post.title, client.get(post.url).get_data(as_text=True).split("<article", 1)[-1][:2000],
             tuple(str(problem) for problem in app.extensions["quire"].snapshot.problems.get(post.source, ())))
            for post in app.extensions["quire"].snapshot.posts]


def write_site(write_post: WritePost) -> list[Path]:
    paths = [write_post(f"2021-05-{day:02d}-day-{day}.md", f"Text of day {day}.\n\n## More\n\nAnd more.",
                        title=f"Day {day}", tags=["x", f"t{day}"]) for day in range(1, 8)]
    write_post("2021-06-01-broken.md", raw="---\ntitle: [unclosed\n---\nBody\n")
    write_post("2021-06-02-liquid.md", raw="---\ntitle: Liquid\n---\n{% gist 1 %}\n")
    return paths


def test_a_restart_reads_unchanged_posts_from_the_cache(make_app: AppFactory, write_post: WritePost,
                                                        cache_dir: Path, reads: list[str]) -> None:
    paths = write_site(write_post)
    first = start(make_app, cache_dir)
    assert len(reads) == 9
    cache_file(cache_dir)
    reads.clear()
    second = start(make_app, cache_dir)
    assert reads == []
    assert summary(second) == summary(first)
    problems = [str(problem) for problem in second.extensions["quire"].problems()]
    assert any("2021-06-01-broken.md:3:1: error" in problem for problem in problems)
    assert any("[liquid]" in problem for problem in problems)

    paths[0].write_text("---\ntitle: Edited\n---\nNew text.\n", encoding="utf-8")
    paths[1].unlink()
    write_post("2021-07-01-new.md", title="New")
    os.utime(paths[2], ns=(paths[2].stat().st_atime_ns, paths[2].stat().st_mtime_ns))  # same mtime, new ctime
    reads.clear()
    third = start(make_app, cache_dir)
    assert sorted(reads) == sorted(["2021-05-01-day-1.md", "2021-07-01-new.md", "2021-05-03-day-3.md"])
    titles = [post.title for post in third.extensions["quire"].snapshot.posts]
    assert "Edited" in titles and "New" in titles and "Day 2" not in titles


def test_other_settings_or_code_make_a_fresh_parse(make_app: AppFactory, write_post: WritePost,
                                                   cache_dir: Path, reads: list[str]) -> None:
    write_site(write_post)
    start(make_app, cache_dir)
    path = cache_file(cache_dir)
    written = path.stat().st_mtime_ns
    reads.clear()
    app = start(make_app, cache_dir, BLOG_PERMALINK="/:year/:slug/")
    assert len(reads) == 9
    assert app.extensions["quire"].snapshot.posts[0].url.startswith("/2021/")
    eventually(lambda: path.stat().st_mtime_ns != written)  # replaced by one for the new settings


@pytest.mark.parametrize("damage", ["torn", "foreign-writable"])
def test_a_damaged_or_unsafe_cache_is_ignored(make_app: AppFactory, write_post: WritePost, cache_dir: Path,
                                              reads: list[str], caplog: pytest.LogCaptureFixture, damage: str) -> None:
    write_site(write_post)
    expected = summary(start(make_app, cache_dir))
    path = cache_file(cache_dir)
    if damage == "torn":
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.chmod(0o666)
    reads.clear()
    with caplog.at_level(logging.WARNING, logger="quire"):
        app = start(make_app, cache_dir)
    assert len(reads) == 9 and summary(app) == expected
    assert any("not using the post cache" in record.getMessage() for record in caplog.records)


def test_a_cache_written_under_another_fingerprint_is_not_used(make_app: AppFactory, write_post: WritePost,
                                                               cache_dir: Path, reads: list[str]) -> None:
    write_site(write_post)
    store = start(make_app, cache_dir).extensions["quire"]
    cache_file(cache_dir)
    for post in store.snapshot.posts:  # what other code or settings might make of them
        object.__setattr__(post, "title", "From elsewhere")
    store.cache.fingerprint = "other code or settings"
    store.cache._write(store._state(), store)
    reads.clear()
    app = start(make_app, cache_dir)
    assert len(reads) == 9
    titles = {post.title for post in app.extensions["quire"].snapshot.posts}
    assert len(titles) == 8 and "From elsewhere" not in titles


def test_cache_off_writes_nothing(make_app: AppFactory, write_post: WritePost, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # where "auto" would write
    write_site(write_post)
    app = make_app(BLOG_CACHE_DIR="off")
    assert app.extensions["quire"].cache is None
    assert make_app(BLOG_CACHE_DIR="auto").extensions["quire"].cache is not None  # the check above can fail
    assert not any((tmp_path / "posts").rglob("*.pickle"))


def test_auto_finds_systemd_then_xdg_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from blog.content.cache import folder_for

    monkeypatch.setenv("CACHE_DIRECTORY", "/var/cache/quire")
    assert folder_for("auto") == "/var/cache/quire"
    monkeypatch.delenv("CACHE_DIRECTORY")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert folder_for("auto") == str(tmp_path / "quire")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/someone")
    assert folder_for("auto") == "/home/someone/.cache/quire"
    assert folder_for("off") == "" and folder_for("/srv/cache") == "/srv/cache"


def test_temporary_files_of_killed_writers_are_cleared(make_app: AppFactory, write_post: WritePost,
                                                       cache_dir: Path) -> None:
    write_site(write_post)
    cache_dir.mkdir(mode=0o700)
    old, fresh = cache_dir / ".posts-killed.tmp", cache_dir / ".posts-writing.tmp"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(old, (0, 0))
    start(make_app, cache_dir)
    cache_file(cache_dir)
    eventually(lambda: not old.exists())
    assert fresh.exists()  # maybe another server's writer, still at work


def indexes(app: Flask) -> dict[str, object]:
    """Return what the snapshot's indexes hold, by URL and slug, with each post's title, tags and problems."""
    snapshot = app.extensions["quire"].snapshot
    return {
        "posts": [(post.url, post.title, tuple(tag.name for tag in post.tags), post.cover_missing)
                  for post in snapshot.posts],
        "urls": sorted(snapshot.by_url), "hidden": sorted(snapshot.hidden_by_url), "stems": sorted(snapshot.by_stem),
        **{kind: {slug: [post.url for post in group.posts] for slug, group in getattr(snapshot, kind).items()}
           for kind in ("categories", "tags", "authors")},
        "problems": {source: [str(problem) for problem in found] for source, found in snapshot.problems.items()},
    }


def test_a_restart_takes_the_indexes_from_the_cache(make_app: AppFactory, write_post: WritePost, cache_dir: Path,
                                                    reads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    write_site(write_post)
    write_post("2021-06-03-later.md", title="Later", date="2999-01-01", tags=["x"])  # hidden until then
    write_post("2021-06-04-draft.md", title="Draft", published=False)
    first = start(make_app, cache_dir)
    cache_file(cache_dir)
    from blog.content import store

    built: list[int] = []
    groups = store._groups
    monkeypatch.setattr(store, "_groups", lambda posts: built.append(len(posts)) or groups(posts))
    reads.clear()
    second = start(make_app, cache_dir)
    assert reads == [] and not any(built)  # no file read, no index built over any post
    assert indexes(second) == indexes(first) and summary(second) == summary(first)
    assert second.extensions["quire"].generation == first.extensions["quire"].generation


def test_a_restart_takes_each_posts_version_from_the_cache(make_app: AppFactory, write_post: WritePost,
                                                          cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_site(write_post)
    write_post("2021-06-03-meta.md", "Text.", title="Meta", cover="/static/none.png", extra={"b": [1, 2]})
    first = start(make_app, cache_dir).extensions["quire"].snapshot.posts
    cache_file(cache_dir)
    second = start(make_app, cache_dir).extensions["quire"].snapshot.posts

    class NoHashing:
        @staticmethod
        def blake2b(*args: object, **kwargs: object) -> None:
            raise AssertionError("a post's version worked out again after a restart")

    with monkeypatch.context() as patched:
        patched.setattr(post_module, "hashlib", NoHashing)
        restored = {post.url: post.version for post in second}
    # Each equal to what this code works out afresh for the same post (a copy knows no version yet).
    assert restored == {post.url: dataclasses.replace(post).version for post in second}
    assert restored == {post.url: post.version for post in first}


CHANGES_WHILE_DOWN = {
    "edit": lambda folder: (folder / "2021-05-02-day-2.md").write_text(
        "---\ntitle: Edited while down\ntags: [y]\ncategories: [news]\n---\nNew text.\n", encoding="utf-8"),
    "delete": lambda folder: (folder / "2021-05-03-day-3.md").unlink(),
    "add": lambda folder: (folder / "2021-07-01-new.md").write_text("---\ntitle: Added\ntags: [x]\n---\nText.\n",
                                                                     encoding="utf-8"),
    "rename": lambda folder: (folder / "2021-05-05-day-5.md").rename(folder / "2021-05-09-day-nine.md"),
    "cover comes": lambda folder: (folder.parent / "static" / "img").mkdir(parents=True)
    or (folder.parent / "static" / "img" / "day.png").write_bytes(b"png"),
}


@pytest.mark.parametrize("patched", [True, False], ids=["patched", "rebuilt"])
@pytest.mark.parametrize("change", sorted(CHANGES_WHILE_DOWN))
def test_a_change_made_while_down_shows_after_a_restart(make_app: AppFactory, write_post: WritePost,
                                                        posts_dir: Path, cache_dir: Path, reads: list[str],
                                                        monkeypatch: pytest.MonkeyPatch, change: str,
                                                        patched: bool) -> None:
    from blog.content import store

    write_site(write_post)
    write_post("2021-05-08-covered.md", title="Covered", cover="/static/img/day.png", tags=["x"])
    start(make_app, cache_dir)
    cache_file(cache_dir)
    CHANGES_WHILE_DOWN[change](posts_dir)
    if not patched:  # as when a deploy brought more changes than are worth patching in one by one
        monkeypatch.setattr(store, "LAYERED_CHANGES", 0)
    built: list[int] = []
    groups = store._groups
    monkeypatch.setattr(store, "_groups", lambda posts: built.append(len(posts)) or groups(posts))
    reads.clear()
    restarted = start(make_app, cache_dir)
    assert len(reads) <= 1  # the changed file, never the whole folder
    assert any(built) != patched  # the cache's indexes patched, or all of them built again
    fresh = make_app(BLOG_CACHE_DIR="off")  # the oracle: everything parsed afresh
    assert indexes(restarted) == indexes(fresh)
    assert summary(restarted) == summary(fresh)


def test_a_few_changes_made_while_down_cost_no_second_listing(make_app: AppFactory, write_post: WritePost,
                                                              posts_dir: Path, cache_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from blog.content import parallel

    write_site(write_post)
    start(make_app, cache_dir)
    cache_file(cache_dir)
    CHANGES_WHILE_DOWN["edit"](posts_dir)
    CHANGES_WHILE_DOWN["add"](posts_dir)
    walks: list[bool] = []
    walk = PostPages.walk

    def counted(self: PostPages, ordered: bool = True):  # type: ignore[no-untyped-def]
        if Path(self.root) == posts_dir:  # the pages folder has a store of its own
            walks.append(ordered)
        return walk(self, ordered)

    monkeypatch.setattr(PostPages, "walk", counted)
    forks = parallel.may_fork()
    restarted = start(make_app, cache_dir, BLOG_WATCH="off")
    # The folder was listed once, by the forked child that checked it against the cache (or here where this
    # process may not fork), and that listing found the changed files: not listed again here.
    assert walks == ([] if forks else [False])
    assert indexes(restarted) == indexes(make_app(BLOG_CACHE_DIR="off"))


def test_a_broken_edit_while_down_keeps_the_last_good_version(make_app: AppFactory, write_post: WritePost,
                                                              cache_dir: Path) -> None:
    paths = write_site(write_post)
    start(make_app, cache_dir)
    cache_file(cache_dir)
    paths[0].write_text("---\ntitle: [unclosed\n---\n", encoding="utf-8")
    restarted = start(make_app, cache_dir)
    assert "Day 1" in [post.title for post in restarted.extensions["quire"].snapshot.posts]
    problems = restarted.extensions["quire"].snapshot.problems["2021-05-01-day-1.md"]
    assert [problem.code for problem in problems] == ["unreadable", "stale"]


def test_a_file_read_with_a_passing_error_is_read_again_at_the_next_start(
        make_app: AppFactory, write_post: WritePost, cache_dir: Path, reads: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    write_site(write_post)
    original = PostPages.read

    def changing(self: PostPages, relative: str, limit: int):  # type: ignore[no-untyped-def]
        if relative == "2021-05-02-day-2.md":
            raise FileChanging("file changed while being read")
        return original(self, relative, limit)

    monkeypatch.setattr(PostPages, "read", changing)
    first = start(make_app, cache_dir)
    assert "Day 2" not in [post.title for post in first.extensions["quire"].snapshot.posts]
    cache_file(cache_dir)
    monkeypatch.setattr(PostPages, "read", original)  # the fixture's, which records each read
    reads.clear()
    second = start(make_app, cache_dir)
    assert reads == ["2021-05-02-day-2.md"]
    assert "Day 2" in [post.title for post in second.extensions["quire"].snapshot.posts]


def test_file_states_and_export_outcomes_pickle_as_constructor_calls() -> None:
    import pickle
    import pickletools

    from blog.content.store import _FileState
    from blog.freeze import Outcome

    for record in (_FileState(b"k" * 32, None, (), None), Outcome("/a/", 200, "k", "a/index.html", related=("r", ["/b/"]))):
        data = pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL)
        assert pickle.loads(data) == record  # noqa: S301 - our own bytes
        operations = {operation.name for operation, _, _ in pickletools.genops(data)}
        assert "REDUCE" in operations and "BUILD" not in operations  # no per-object __setstate__
