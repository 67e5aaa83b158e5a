"""A bad file never takes the site down: it is reported with its line, logged once and kept out."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from blog.content.cache import key_of
from tests.conftest import AppFactory, WritePost


@pytest.mark.parametrize(
    ("data", "line", "fragment"),
    [
        (b"---\ntitle: [unclosed\n---\nBody\n", 3, "invalid front matter"),
        (b"---\ntitle: ok\n  bad: indent\n---\n", 3, "invalid front matter"),
        (b"---\ntitle: T\n", 1, "never closed"),
        (b"---\n- a list\n---\nBody\n", 2, "must be a mapping"),
        (b"---\ntitle: T\n---\nline two\n\xff\xfe broken\n", 5, "not valid UTF-8"),
        (b"---\ntitle: T\n---\nbinary\x00here\n", 4, "NUL byte"),
        (b"---\na: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
         b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n---\n", 2, "expands"),
        (b"---\nx: !!python/object/apply:os.system ['true']\n---\n", 2, "invalid front matter"),
    ],
)
def test_bad_file_is_reported_with_line_and_others_still_serve(
    make_app: AppFactory, write_post: WritePost, caplog: pytest.LogCaptureFixture,
    data: bytes, line: int, fragment: str,
) -> None:
    write_post("2020-01-01-good.md", title="Good")
    write_post("2020-01-02-bad.md", raw=data)
    with caplog.at_level(logging.WARNING, logger="quire"):
        app = make_app()
    store = app.extensions["quire"]
    assert [post.title for post in store.snapshot.posts] == ["Good"]
    (problem,) = [problem for problem in store.problems() if problem.severity == "error"]
    assert problem.source == "2020-01-02-bad.md" and problem.line == line and fragment in problem.message
    assert [record.getMessage() for record in caplog.records if "bad.md" in record.getMessage()] == [str(problem)]
    client = app.test_client()
    assert client.get("/").status_code == 200
    assert client.get("/posts/good/").status_code == 200
    assert client.get("/posts/bad/").status_code == 404


def test_oversized_file_is_skipped(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-big.md", "x" * 5000, title="Big")
    store = make_app(BLOG_MAX_POST_SIZE="4KB").extensions["quire"]
    assert store.snapshot.posts == ()
    assert "over the 4,096-byte limit" in store.problems()[0].message


def test_bom_and_crlf_are_accepted(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-win.md", raw=b"\xef\xbb\xbf---\r\ntitle: Windows\r\n---\r\nLine one\r\n\r\nTwo\r\n")
    (post,) = make_app().extensions["quire"].snapshot.posts
    assert post.title == "Windows" and post.excerpt_source == "Line one"


def test_broken_edit_keeps_serving_the_last_good_version(make_app: AppFactory, write_post: WritePost,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = write_post("2020-01-01-post.md", "Original body.", title="Original")
    app = make_app()
    store = app.extensions["quire"]
    path.write_text("---\ntitle: [broken\n---\nNew body\n", encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a different key, whatever the file system's timestamp granularity
    with caplog.at_level(logging.WARNING, logger="quire"):
        store.refresh()
        store.refresh()  # nothing new: not logged again
    response = app.test_client().get("/posts/post/")
    assert response.status_code == 200 and b"Original body." in response.data
    codes = sorted(problem.code for problem in store.problems())
    assert codes == ["stale", "unreadable"]
    assert len([record for record in caplog.records if "unreadable" in record.getMessage()]) == 1
    path.write_text("---\ntitle: Fixed\n---\nFixed body\n", encoding="utf-8")
    store.refresh()
    assert store.snapshot.posts[0].title == "Fixed" and store.problems() == []


def test_deleted_file_disappears(make_app: AppFactory, write_post: WritePost) -> None:
    path = write_post("2020-01-01-post.md", title="Going")
    store = make_app().extensions["quire"]
    path.unlink()
    store.refresh()
    assert store.snapshot.posts == () and store.snapshot.by_url == {}


def test_symlinked_post_is_not_followed(make_app: AppFactory, write_post: WritePost, posts_dir: Path,
                                        tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("---\ntitle: Outside\n---\nSecret\n", encoding="utf-8")
    (posts_dir / "2020-01-01-link.md").symlink_to(outside)
    assert make_app().extensions["quire"].snapshot.posts == ()


def test_posts_folder_missing_gives_empty_site(make_app: AppFactory, tmp_path: Path) -> None:
    client: FlaskClient = make_app(BLOG_POSTS_DIR=str(tmp_path / "absent")).test_client()
    assert client.get("/").status_code == 200


def test_rendered_bodies_are_kept_for_a_bounded_number_of_posts(make_app: AppFactory, write_post: WritePost,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import blog.content.store

    monkeypatch.setattr(blog.content.store, "RENDERED_POSTS_KEPT", 3)
    for day in range(1, 6):
        write_post(f"2020-01-0{day}-p{day}.md", f"Body {day}.", title=f"P{day}")
    store = make_app().extensions["quire"]
    htmls = [post.html for post in store.snapshot.posts]
    assert htmls == [f"<p>Body {day}.</p>" for day in range(5, 0, -1)]
    assert store._bodies.cache_info().currsize == 3
    assert store.snapshot.posts[0].html == "<p>Body 5.</p>"


def test_file_growing_while_read_keeps_the_last_good_version(make_app: AppFactory, write_post: WritePost,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_post("2020-01-01-post.md", "Complete.", title="Post")
    store = make_app().extensions["quire"]
    assert "Complete." in store.snapshot.posts[0].html  # served once, so its rendering is kept
    real_fstat = os.fstat

    def shrunk_fstat(descriptor: int) -> os.stat_result:  # as if a writer appended after fstat
        status = list(real_fstat(descriptor))
        status[6] -= 5  # st_size
        return os.stat_result(status)

    path.write_text("---\ntitle: Post\n---\nComplete and longer.\n", encoding="utf-8")
    os.utime(path, ns=(5, 5))
    monkeypatch.setattr(os, "fstat", shrunk_fstat)
    store.refresh()
    assert "Complete.</p>" in store.snapshot.posts[0].html
    assert {problem.code for problem in store.problems()} == {"changing", "stale"}
    monkeypatch.undo()
    os.utime(path, ns=(6, 6))
    store.refresh()
    assert store.snapshot.posts[0].body.strip() == "Complete and longer."


def _swap(posts_dir: Path) -> None:
    first, second = posts_dir / "2020-01-01-one.md", posts_dir / "2020-01-02-two.md"
    first.rename(posts_dir / "swap")
    second.rename(first)
    (posts_dir / "swap").rename(second)


@pytest.mark.parametrize("change", [
    lambda posts_dir: (posts_dir / "2020-01-01-one.md").write_text("---\ntitle: One, edited\n---\nNew\n", "utf-8"),
    lambda posts_dir: (posts_dir / "2020-01-03-three.md").write_text("---\ntitle: Three\n---\nAdded\n", "utf-8"),
    lambda posts_dir: (posts_dir / "2020-01-02-two.md").unlink(),
    lambda posts_dir: (posts_dir / "2020-01-02-two.md").rename(posts_dir / "2020-01-05-moved.md"),
    _swap,
], ids=["edited", "added", "removed", "renamed", "swapped"])
def test_rescan_finds_what_a_fresh_load_finds(make_app: AppFactory, write_post: WritePost, posts_dir: Path,
                                              change: Callable[[Path], object]) -> None:
    write_post("2020-01-01-one.md", "First.", title="One")
    write_post("2020-01-02-two.md", "Second.", title="Two")
    store = make_app().extensions["quire"]
    generation = store.generation
    assert store.refresh() is False and store.generation == generation  # nothing changed: nothing published
    change(posts_dir)
    assert store.refresh() is True
    fresh = make_app().extensions["quire"]
    assert [(post.url, post.title) for post in store.snapshot.posts] == [
        (post.url, post.title) for post in fresh.snapshot.posts]
    assert store.refresh() is False


def test_a_post_serving_its_last_good_version_has_no_file_key(make_app: AppFactory, write_post: WritePost) -> None:
    """blog freeze trusts a post's version while its file key holds: the key must be that of the post's own file."""
    path = write_post("2020-01-01-post.md", "Original body.", title="Original")
    store = make_app().extensions["quire"]
    assert store.file_key(store.snapshot.posts[0]) == key_of(path.stat())
    path.write_text("---\ntitle: [broken\n---\nNew body\n", encoding="utf-8")
    os.utime(path, ns=(1, 1))
    store.refresh()
    assert store.snapshot.posts[0].title == "Original" and store.file_key(store.snapshot.posts[0]) is None
    path.write_text("---\ntitle: Fixed\n---\nFixed body\n", encoding="utf-8")
    os.utime(path, ns=(2, 2))
    store.refresh()
    assert store.file_key(store.snapshot.posts[0]) == key_of(path.stat())
