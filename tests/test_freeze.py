"""``blog freeze``: every page, feed and asset written as files, and every link inside the export resolves."""

from __future__ import annotations

import fcntl
import gc
import gzip
import json
import logging
import marshal
import os
import re
import shutil
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest
import yaml
from bs4 import BeautifulSoup
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blog import cli, create_app
from blog import freeze as exporter
from tests.conftest import AppFactory, WritePost, eventually

BASE = "https://blog.example.com"


@pytest.fixture
def site(make_app: AppFactory, write_post: WritePost) -> Flask:
    for day in range(1, 14):  # more than a page, so pagination is crawled too
        write_post(f"2020-01-{day:02d}-post-{day}.md", f"Body {day}. [Next](/posts/post-{day + 1}/)" if day < 13
                   else "Last. [First]({% post_url 2020-01-01-post-1 %})",
                   title=f"Post {day}", categories=["Notes"], tags=[f"t{day % 3}"], author="Ada")
    write_post("2020-02-01-café.md", "Unicode URL.", title="Café")
    write_post("2020-02-02-page.md", "A page. [Page one](/page/1/)", title="About", permalink="/about.html")
    write_post("2020-02-03-plan.md", "Secret.", title="Plan", published=False)
    write_post("2020-02-04-code.md", 'Markup shown, not linked:\n\n    <a href="/shown/nowhere/">x</a>\n\n'
               "`<img src='/shown/none.png'>` and [a real one](/posts/post-1/ \"Post &amp; one\").",
               title="Code")
    return make_app(BLOG_PER_PAGE="5")


def freeze(app: Flask, folder: Path) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["blog", "freeze", str(folder)])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_freeze_writes_every_page_feed_and_asset(site: Flask, tmp_path: Path) -> None:
    out = tmp_path / "site"
    code, output = freeze(site, out)
    assert code == 0, output
    assert output.strip().endswith("; 0 broken links")
    files = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    expected = {
        "index.html", "page/2/index.html", "page/3/index.html", "posts/post-1/index.html", "posts/post-13/index.html",
        "posts/café/index.html", "about.html", "archive/index.html", "archive/2020/index.html", "categories/index.html", "tags/index.html",
        "category/notes/index.html", "category/notes/page/2/index.html", "tag/t1/index.html", "author/ada/index.html",
        "feed.xml", "rss.xml", "feed.json", "category/notes/feed.xml", "tag/t0/feed.json", "sitemap.xml",
        "robots.txt", "404.html", "static/css/site.css", ".quire-freeze",
    }
    assert expected <= files, sorted(expected - files)
    assert not any(name.startswith(("search", "healthz", "posts/plan")) for name in files)
    page = BeautifulSoup((out / "posts/post-13/index.html").read_text(encoding="utf-8"), "html.parser")
    assert page.find("h1").text == "Post 13"
    assert page.select_one(".post-body a")["href"] == "/posts/post-1/"
    assert json.loads((out / "feed.json").read_text(encoding="utf-8"))["items"][0]["title"] == "Code"
    ElementTree.parse(out / "sitemap.xml")
    assert BeautifulSoup((out / "404.html").read_text(encoding="utf-8"), "html.parser").find("h1")


def test_every_link_inside_the_export_resolves_to_a_file(site: Flask, tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert freeze(site, out)[0] == 0
    checked = 0
    for html in out.rglob("*.html"):
        if html.name == "404.html":
            continue
        page = "/" + html.relative_to(out).as_posix().removesuffix("index.html")
        soup = BeautifulSoup(html.read_text(encoding="utf-8"), "html.parser")
        for tag in soup.find_all(["a", "link", "img", "script"]):
            reference = tag.get("href") or tag.get("src")
            target = exporter.site_path(reference or "#", page, BASE)
            if target is None or target.startswith("/search"):
                continue
            assert exporter.file_for(out, target).is_file(), (html, reference)
            checked += 1
    assert checked > 200


def test_freeze_reports_broken_links_and_fails(make_app: AppFactory, write_post: WritePost, tmp_path: Path) -> None:
    write_post("2020-01-01-one.md", "[gone](/posts/nowhere/) and [again](/posts/nowhere/)", title="One")
    result = make_app().test_cli_runner().invoke(args=["blog", "freeze", str(tmp_path / "site")])
    assert result.exit_code == 1
    assert "Exporting" in result.stderr  # the progress lines (a bar only on a terminal)
    errors = [line for line in result.stderr.splitlines() if not line.startswith("Exporting")]
    assert errors[0] == "/posts/nowhere/: answered 404, not exported"
    # Each file that links there, once however often it does; feeds carry the link made absolute.
    assert sorted(errors[1:]) == [f"{name}: broken link /posts/nowhere/" for name in
                                  ("feed.json", "feed.xml", "index.html", "posts/one/index.html", "rss.xml")]
    assert result.stdout.startswith(f"{tmp_path / 'site'}: ")
    assert result.stdout.strip().endswith("; 6 broken links")


def test_freeze_replaces_its_own_export_but_never_another_folder(site: Flask, tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert freeze(site, out)[0] == 0
    (out / "stale.html").write_text("old")
    assert freeze(site, out)[0] == 0
    assert not (out / "stale.html").exists()
    other = tmp_path / "precious"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    code, output = freeze(site, other)
    assert code == 1 and "not made by blog freeze" in output
    assert [path.name for path in other.iterdir()] == ["keep.txt"]
    # The previous export is kept beside the new one, as the spare the next export brings up to date.
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith(".")) == [".site.spare"]
    assert freeze(site, out)[0] == 0
    assert not (out / "stale.html").exists()
    # --full writes a new tree and deletes the others, by a detached process once the new one is in place.
    assert exporter.freeze(site, out, progress=lambda total: nullcontext(_Bar(total)), full=True).broken == []
    eventually(lambda: not [path.name for path in tmp_path.iterdir() if path.name.startswith(".")])


# Incremental, parallel and atomic ------------------------------------------------------------------------

def export(app: Flask, folder: Path, **options: Any) -> exporter.Report:
    """Run the exporter without the CLI, with a progress bar that shows nothing."""
    return exporter.freeze(app, folder, progress=lambda total: nullcontext(_Bar(total)), **options)


class _Bar:
    def __init__(self, length: int, interrupt_after: int | None = None):
        self.length = length
        self.done = 0
        self.interrupt_after = interrupt_after

    def update(self, steps: int) -> None:
        self.done += steps
        if self.interrupt_after is not None and self.done >= self.interrupt_after:
            raise KeyboardInterrupt


def tree(folder: Path) -> dict[str, bytes]:
    """Return every file of an export but its manifest, by relative path."""
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and path.name != exporter.MARKER}


def inodes(folder: Path) -> dict[str, int]:
    return {path.relative_to(folder).as_posix(): path.stat().st_ino for path in folder.rglob("*")
            if path.is_file() and path.name != exporter.MARKER}


@pytest.fixture
def forking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the exporter fork its rendering children even for a site of a few pages."""
    monkeypatch.setattr(exporter, "MIN_PAGES_PER_PROCESS", 1)


def test_parallel_export_equals_one_process(site: Flask, tmp_path: Path, forking: None) -> None:
    parallel = export(site, tmp_path / "parallel", processes=2)
    alone = export(site, tmp_path / "alone", processes=1)
    assert parallel.processes == 2 and alone.processes == 1
    assert tree(tmp_path / "parallel") == tree(tmp_path / "alone")
    assert parallel.broken == alone.broken == [] and parallel.failed == alone.failed == []
    assert parallel.written == parallel.files == len(tree(tmp_path / "parallel"))
    # The store lists every page; following the links finds only what no list has: /page/1/, which redirects.
    assert parallel.discovered == alone.discovered == 1
    assert b'url=/"' in tree(tmp_path / "parallel")["page/1/index.html"]
    assert parallel.rendered == alone.rendered


def test_second_export_writes_only_what_changed(make_app: AppFactory, write_post: WritePost, site: Flask,
                                               tmp_path: Path, posts_dir: Path) -> None:
    out = tmp_path / "site"
    first = export(site, out)
    before, before_inodes = tree(out), inodes(out)
    again = export(make_app(BLOG_PER_PAGE="5"), out)
    assert (again.written, again.unchanged, again.deleted) == (0, first.files, 0)
    assert again.rendered < 10  # the terms pages, the sitemap, the 404 page: everything else known unchanged
    assert tree(out) == before and inodes(out) == before_inodes  # hard links of the very same files
    write_post("2020-01-05-post-5.md", "Body five, edited. [Next](/posts/post-6/)", title="Post 5",
               categories=["Notes"], tags=["t2"], author="Ada")
    (posts_dir / "2020-02-04-code.md").unlink()
    edited = export(make_app(BLOG_PER_PAGE="5"), out)
    now = tree(out)
    changed = {name for name in now if name in before and now[name] != before[name]}
    assert "posts/post-5/index.html" in changed and "posts/code/index.html" not in now
    assert edited.written == len(changed) + len(set(now) - set(before))
    assert edited.deleted == len(set(before) - set(now)) >= 1
    assert edited.unchanged == len(now) - edited.written
    assert all(inodes(out)[name] == before_inodes[name] for name in now if now[name] == before.get(name))


def test_only_the_versions_of_posts_whose_file_changed_are_worked_out_again(
        make_app: AppFactory, write_post: WritePost, site: Flask, tmp_path: Path, posts_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "site"
    export(site, out)
    worked_out: list[str] = []
    original = exporter.post_version
    monkeypatch.setattr(exporter, "post_version",
                        lambda post, resolve: worked_out.append(post.source) or original(post, resolve))
    export(make_app(BLOG_PER_PAGE="5"), out)
    assert worked_out == []
    path = posts_dir / "2020-01-05-post-5.md"
    edited = path.with_name("edited.tmp")  # saved as an editor saves: a new file renamed over the old one
    edited.write_text(path.read_text(encoding="utf-8").replace("Body 5.", "Body five."), encoding="utf-8")
    edited.rename(path)
    app = make_app(BLOG_PER_PAGE="5")
    export(app, out)
    assert worked_out == ["2020-01-05-post-5.md"]
    assert "Body five." in (out / "posts/post-5/index.html").read_text(encoding="utf-8")
    assert tree(out) == tree(_full_export(app, tmp_path / "full"))


def test_a_post_whose_post_url_link_leads_elsewhere_now_is_exported_again(make_app: AppFactory, write_post: WritePost,
                                                                         tmp_path: Path) -> None:
    """Its file is as it was, but the post it names (neither its neighbour nor related) moved: it links there now."""
    write_post("2020-01-01-target.md", "The target.", title="Target", tags=["a"])
    for day in range(2, 5):
        write_post(f"2020-01-0{day}-between-{day}.md", "Between.", title=f"Between {day}", tags=["b"])
    write_post("2020-01-05-linker.md", "See [it]({% post_url 2020-01-01-target %}).", title="Linker", tags=["c"])
    out = tmp_path / "site"
    export(make_app(), out)
    write_post("2020-01-01-target.md", "The target.", title="Target", permalink="/moved/")
    app = make_app()
    assert export(app, out).broken == []
    assert 'href="/moved/"' in (out / "posts/linker/index.html").read_text(encoding="utf-8")
    assert tree(out) == tree(_full_export(app, tmp_path / "full"))


def test_pages_known_unchanged_never_reach_a_child(make_app: AppFactory, write_post: WritePost, site: Flask,
                                                   tmp_path: Path, forking: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """They are kept before any child is forked: only the pages to render again are handed out."""
    out = tmp_path / "site"
    export(site, out, processes=2)
    write_post("2020-01-05-post-5.md", "Body five, edited. [Next](/posts/post-6/)", title="Post 5",
               categories=["Notes"], tags=["t2"], author="Ada")
    handed: list[str] = []
    start = exporter._Child.start.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(exporter._Child, "start", classmethod(
        lambda cls, owner, jobs: handed.extend(job.path for job in jobs) or start(cls, owner, jobs)))
    app = make_app(BLOG_PER_PAGE="5")
    report = export(app, out, processes=2)
    assert "/posts/post-5/" in handed and len(handed) <= report.rendered < report.files // 2
    assert tree(out) == tree(_full_export(app, tmp_path / "full"))


@pytest.mark.parametrize("manifest", ["JSON, format 2", "another Python's", "writable by others", "truncated"])
def test_a_manifest_it_cannot_trust_means_a_clean_build(make_app: AppFactory, site: Flask, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture, manifest: str) -> None:
    out = tmp_path / "site"
    export(site, out)
    path = out / exporter.MARKER
    header, _, body = path.read_bytes().partition(b"\n")
    fields = json.loads(header)
    if manifest == "JSON, format 2":  # what the exporter wrote before its body was marshal
        path.write_text(json.dumps({**fields, "format": 2}) + "\n" + json.dumps(marshal.loads(body)) + "\n",
                        encoding="utf-8")
    elif manifest == "another Python's":
        path.write_bytes(json.dumps({**fields, "python": "2.7.18"}).encode() + b"\n" + body)
    elif manifest == "writable by others":  # another user could have crafted its marshal
        path.chmod(0o666)
    else:
        path.write_bytes(header + b"\n" + body[:len(body) // 2])
    app = make_app(BLOG_PER_PAGE="5")
    with caplog.at_level(logging.WARNING, logger="quire"):
        report = export(app, out)
    assert report.rendered > len(app.extensions["quire"].snapshot.posts)  # every page again
    assert tree(out) == tree(_full_export(app, tmp_path / "full"))
    assert ("not using the manifest" in caplog.text) == (manifest == "writable by others")
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # the new one, whatever the umask
    assert export(app, out).rendered < 10  # and the next export trusts it


def test_interrupted_export_leaves_the_previous_one_intact(make_app: AppFactory, write_post: WritePost, site: Flask,
                                                          tmp_path: Path, forking: None) -> None:
    out = tmp_path / "site"
    export(site, out, processes=2)
    before, manifest = tree(out), (out / exporter.MARKER).read_bytes()
    write_post("2020-03-01-new.md", "A new post.", title="New")
    app = make_app(BLOG_PER_PAGE="5")
    with pytest.raises(KeyboardInterrupt):
        exporter.freeze(app, out, progress=lambda total: nullcontext(_Bar(total, interrupt_after=5)), processes=2)
    assert tree(out) == before and (out / exporter.MARKER).read_bytes() == manifest
    assert sorted(path.name for path in tmp_path.iterdir()) == ["posts", "site"]  # no staging folder left behind
    assert "posts/new/index.html" in tree(out) or export(app, out).written  # and the next export goes on


def test_a_second_export_into_the_same_folder_is_refused_while_one_runs(make_app: AppFactory, write_post: WritePost,
                                                                       site: Flask, tmp_path: Path) -> None:
    out = tmp_path / "site"
    export(site, out)
    export(site, out)  # the spare exists now: two exports at once would both write into it
    before, spare = tree(out), tree(exporter.spare_folder(out))
    write_post("2020-03-01-new.md", "A new post.", title="New")
    app = make_app()
    holder = os.open(out, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # as the export running in another process holds it
    try:
        with pytest.raises(exporter.FreezeError, match=f"another blog freeze is exporting into {out}"):
            export(app, out)
    finally:
        os.close(holder)
    assert tree(out) == before and tree(exporter.spare_folder(out)) == spare
    export(app, out)  # once the other is done, the next goes on
    assert "posts/new/index.html" in tree(out)


def test_a_site_file_or_theme_edit_reaches_every_page_of_the_next_export(make_app: AppFactory, write_post: WritePost,
                                                                          posts_dir: Path, tmp_path: Path) -> None:
    write_post("2024-01-01-a.md", "Hello.", title="A")
    site_file = posts_dir.parent / "site.yml"
    site_file.write_text("title: First Title\n", encoding="utf-8")
    out = tmp_path / "site"
    export(make_app(), out)
    site_file.write_text("title: Second Title\n", encoding="utf-8")  # the title in every page's head and header
    export(make_app(), out)
    page = out / "posts" / "a" / "index.html"
    assert "Second Title" in page.read_text(encoding="utf-8")
    footer = Path(__file__).resolve().parent.parent / "templates" / "_footer.html"  # the default theme's
    theme = posts_dir.parent / "theme" / "templates"
    theme.mkdir(parents=True)
    (theme / "_footer.html").write_text(footer.read_text(encoding="utf-8").replace("</footer>", "<p>Themed.</p></footer>"),
                                        encoding="utf-8")
    export(make_app(), out)
    assert "Themed." in page.read_text(encoding="utf-8") and "Themed." in (out / "index.html").read_text(encoding="utf-8")


def test_the_spare_is_brought_up_to_date_and_exchanged_with_the_folder(make_app: AppFactory, write_post: WritePost,
                                                                      site: Flask, tmp_path: Path) -> None:
    out, spare = tmp_path / "site", exporter.spare_folder(tmp_path / "site")
    export(site, out)
    assert not spare.exists()  # nothing to keep after the first export
    export(site, out)
    before, folders = tree(out), (out.stat().st_ino, spare.stat().st_ino)
    write_post("2020-01-03-post-3.md", "Body three, edited. [Next](/posts/post-4/)", title="Post 3",
               categories=["Notes"], tags=["t0"], author="Ada")
    report = export(make_app(BLOG_PER_PAGE="5"), out)
    assert (out.stat().st_ino, spare.stat().st_ino) == folders[::-1]  # no new tree: the two swapped places
    assert tree(spare) == before  # the export it replaced, whole, the next one's spare
    assert report.written == len(_changed(before, tree(out))) >= 1 and report.rendered < len(before) // 2
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == [".site.spare"]


def test_an_export_interrupted_while_it_updates_the_spare_leaves_the_folder_intact(
        make_app: AppFactory, write_post: WritePost, site: Flask, tmp_path: Path, forking: None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    out, spare = tmp_path / "site", exporter.spare_folder(tmp_path / "site")
    export(site, out, processes=2)
    export(site, out, processes=2)  # now the first export is the spare beside the folder
    for round_ in range(2):
        before, manifest = tree(out), (out / exporter.MARKER).read_bytes()
        write_post("2020-01-03-post-3.md", f"Body three, edit {round_}. [Next](/posts/post-4/)", title="Post 3",
                   categories=["Notes"], tags=["t0"], author="Ada")
        write_post(f"2020-03-0{round_ + 1}-new-{round_}.md", "A new post.", title=f"New {round_}")
        app = make_app(BLOG_PER_PAGE="5")
        if round_ == 0:  # Ctrl-C while the children bring the spare up to date
            progress = lambda total: nullcontext(_Bar(total, interrupt_after=5))  # noqa: E731
            with pytest.raises(KeyboardInterrupt):
                exporter.freeze(app, out, progress=progress, processes=2)
        else:  # the spare is up to date and holds its manifest; Ctrl-C before the exchange
            with monkeypatch.context() as patch:
                patch.setattr(exporter, "_swap", _interrupt)
                with pytest.raises(KeyboardInterrupt):
                    export(app, out, processes=2)
        assert spare.is_dir()  # it was the spare being updated, and the folder was never written into
        assert tree(out) == before and (out / exporter.MARKER).read_bytes() == manifest
        report = export(app, out, processes=2)  # the spare is not trusted: a new tree, and correct
        assert tree(out) == tree(_full_export(app, tmp_path / "full"))
        assert report.written == len(_changed(before, tree(out))) and report.deleted == 0


def _interrupt(*args: Any, **kwargs: Any) -> None:
    raise KeyboardInterrupt


def _full_export(app: Flask, folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    export(app, folder, full=True, processes=1)
    return folder


def _changed(before: dict[str, bytes], now: dict[str, bytes]) -> set[str]:
    return {name for name, body in now.items() if before.get(name) != body}


DAMAGES = ("rewritten in place", "replaced", "deleted", "added", "a folder instead", "manifest deleted",
           "manifest garbled", "another export's manifest", "spare deleted")


def _damage(spare: Path, damage: str, number: int) -> None:
    """Do to the spare what a person (or a disk) might: ``number`` picks the file."""
    files = sorted(name for name in tree(spare) if not name.startswith("static/"))
    name = files[number % len(files)]
    victim = spare / name
    if damage == "rewritten in place":  # shared with the folder: both change, and the sizes tell
        victim.write_bytes(victim.read_bytes() + b"<!-- edited by hand -->")
    elif damage == "replaced":  # an editor's save: a new file renamed over the old one
        (spare / "new").write_bytes(b"edited by hand")
        os.replace(spare / "new", victim)
    elif damage == "deleted":
        victim.unlink()
    elif damage == "added":
        (spare / "stray.html").write_text("a file of nobody's", encoding="utf-8")
        (spare / "posts" / "stray").mkdir(parents=True, exist_ok=True)
        (spare / "posts" / "stray" / "index.html").write_text("a page of nobody's", encoding="utf-8")
    elif damage == "a folder instead":
        victim.unlink()
        victim.mkdir()
        (victim / "index.html").write_text("in the way", encoding="utf-8")
    elif damage == "manifest deleted":
        (spare / exporter.MARKER).unlink()
    elif damage == "manifest garbled":
        (spare / exporter.MARKER).write_text(f'{{"format": {exporter.FORMAT}, "generation', encoding="utf-8")
    elif damage == "another export's manifest":
        shutil.copy(spare.with_name(spare.name.split(".")[1]) / exporter.MARKER, spare / exporter.MARKER)
    else:
        shutil.rmtree(spare)


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_spare_damaged_or_edited_by_hand_still_gives_the_full_export(
        damage: str, make_app: AppFactory, write_post: WritePost, site: Flask, tmp_path: Path) -> None:
    out = tmp_path / "site"
    export(site, out)
    export(site, out)
    _damage(exporter.spare_folder(out), damage, 3)
    write_post("2020-01-03-post-3.md", "Body three, edited. [Next](/posts/post-4/)", title="Post 3",
               categories=["Notes"], tags=["t0"], author="Ada")
    app = make_app(BLOG_PER_PAGE="5")
    before = tree(out)
    report = export(app, out)
    now = tree(out)
    assert now == tree(_full_export(app, tmp_path / "full"))
    assert (report.files, report.written, report.deleted) == (len(now), len(_changed(before, now)), 0)
    assert report.unchanged == len(now) - report.written
    export(app, out)  # and the spare it leaves is sound
    assert tree(out) == now


def test_full_writes_every_file_again(site: Flask, tmp_path: Path) -> None:
    out = tmp_path / "site"
    export(site, out)
    before = inodes(out)
    full = export(site, out, full=True)
    assert full.written == full.files and full.unchanged == 0
    assert not set(before.values()) & set(inodes(out).values())


def test_gzip_copies_beside_every_text_file(site: Flask, tmp_path: Path) -> None:
    out = tmp_path / "site"
    report = export(site, out, compress=("gz",))
    files = tree(out)
    for name in ("index.html", "feed.xml", "feed.json", "sitemap.xml", "robots.txt", "static/css/site.css",
                 "posts/post-1/index.html", "404.html"):
        assert gzip.decompress(files[f"{name}.gz"]) == files[name]
    assert not any(name.endswith(".jpg.gz") for name in files)  # already compressed
    assert report.files == len(files)
    plain = export(site, out)
    assert not any(name.endswith(".gz") for name in tree(out))
    assert plain.deleted == report.files - plain.files and plain.written == 0


def test_symlinks_in_static_are_exported_only_as_the_server_serves_them(site: Flask, tmp_path: Path) -> None:
    static = tmp_path / "static"
    shutil.copytree(site.static_folder or "", static)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "key.txt").write_text("private key")
    (static / "key.txt").symlink_to(secrets / "key.txt")  # a secrets file
    (static / "private").symlink_to(secrets)  # a whole folder
    (static / "assets" / "outside.txt").symlink_to(secrets / "key.txt")
    (static / "style.css").symlink_to(static / "css" / "site.css")  # inside static/: the server serves it
    site.static_folder = str(static)
    client = site.test_client()
    for path in ("/static/key.txt", "/static/private/key.txt", "/assets/outside.txt", "/static/assets/outside.txt"):
        assert client.get(path).status_code == 404, path
    assert client.get("/static/style.css").status_code == 200
    out = tmp_path / "site"
    code, output = freeze(site, out)
    assert code == 0, output
    files = tree(out)
    assert not any(b"private key" in body for body in files.values())
    assert not {"static/key.txt", "static/private/key.txt", "assets/outside.txt", "static/assets/outside.txt"} & set(files)
    assert files["static/style.css"] == (static / "css" / "site.css").read_bytes()
    assert "static/key.txt: leads outside static/ (the server answers 404), not exported" in output


def test_drafts_future_posts_and_previews_are_never_exported(make_app: AppFactory, write_post: WritePost,
                                                             tmp_path: Path) -> None:
    write_post("2020-01-01-plan.md", "Secret plan.", title="Plan", published=False)
    write_post("2999-01-01-later.md", "Not yet.", title="Later")
    write_post("2020-01-02-one.md", "[preview](/posts/plan/?preview=let-me-in-0123456789)", title="One")
    app = make_app(BLOG_PREVIEW_TOKEN="let-me-in-0123456789")
    assert app.test_client().get("/posts/plan/?preview=let-me-in-0123456789").status_code == 200
    out = tmp_path / "site"
    code, output = freeze(app, out)
    assert code == 1 and "/posts/plan/: answered 404, not exported" in output
    files = tree(out)
    assert not any(name.startswith(("posts/plan", "posts/later")) for name in files)
    assert not any(b"Secret plan" in body or b"Not yet" in body for body in files.values())


def test_progress_is_reported_in_lines_when_stderr_is_not_a_terminal(site: Flask, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "PROGRESS_SECONDS", 0.0)  # a line at every step; five seconds apart in real use
    result = site.test_cli_runner().invoke(args=["blog", "freeze", str(tmp_path / "site")])
    lines = [line for line in result.stderr.splitlines() if line.startswith("Exporting")]
    assert lines[0].startswith("Exporting ") and lines[0].endswith(" pages")
    assert len(lines) > 10 and lines[-1].endswith("(100%)")
    counts = [int(line.split()[1].split("/")[0].replace(",", "")) for line in lines[1:]]
    assert counts == sorted(counts)
    summary = result.stdout.strip()
    assert re.fullmatch(rf"{re.escape(str(tmp_path / 'site'))}: [\d,]+ files, [\d,]+ written \([\d,]+ bytes\), "
                        r"0 unchanged, 0 deleted, [\d,]+ pages rendered in [\d.]+ s; 0 broken links", summary), summary


def test_pages_and_their_menu_are_exported_and_kept_current(make_app: AppFactory, write_post: WritePost,
                                                            write_page: WritePost, tmp_path: Path) -> None:
    write_post("2020-01-01-one.md", "One.", title="One")
    write_page("about.md", "About us.", title="About", nav=1)
    write_page("colophon.md", "Made with Quire.", title="Colophon")  # in no menu: found through the sitemap
    out = tmp_path / "site"
    assert export(make_app(), out).broken == []
    files = tree(out)
    assert b"About us." in files["about/index.html"] and b"Made with Quire." in files["colophon/index.html"]
    write_page("about.md", "About us.", title="Who we are", nav=1)  # the menu of every page changes
    again = export(make_app(), out)
    post = BeautifulSoup(tree(out)["posts/one/index.html"], "html.parser")
    assert "Who we are" in post.find("header").text
    assert again.written >= len([name for name in files if name.endswith(".html")]) - 1


def test_a_jekyll_sites_own_files_and_redirects_are_exported(tmp_path: Path) -> None:
    site = tmp_path / "jekyll"
    for relative, text in {"_config.yml": "permalink: pretty\n",
                           "_posts/2016-09-21-a.md": "---\ntitle: A\nredirect_from: [/blog/a/, /old/a.html]\n---\nA.\n",
                           "_posts/2016-09-23-moved.md": "---\ntitle: C\nredirect_to: https://elsewhere.example/c/\n---\nC.\n",
                           "images/logo.png": "logo", "_data/secret.yml": "token: s3cret\n"}.items():
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text, encoding="utf-8")
    (tmp_path / "outside.txt").write_text("outside the site", encoding="utf-8")
    (site / "images/escape.txt").symlink_to(tmp_path / "outside.txt")
    app = create_app({"BLOG_JEKYLL_SITE": str(site), "BLOG_WATCH": "off", "BLOG_URL": BASE})
    out = site / "public"  # inside the site folder: never copied into itself
    export(app, out)
    files = tree(out)
    assert files["images/logo.png"] == b"logo"
    assert not {"images/escape.txt", "_data/secret.yml", "_config.yml"} & set(files)
    assert not any(name.startswith("public/") for name in files)
    for origin, target in [("blog/a/index.html", "/2016/09/21/a/"), ("old/a.html", "/2016/09/21/a/"),
                           ("2016/09/23/moved/index.html", "https://elsewhere.example/c/")]:
        refresh = BeautifulSoup(files[origin], "html.parser").find("meta", attrs={"http-equiv": "refresh"})
        assert refresh["content"] == f"0; url={target}", origin
    assert export(app, out).written == 0  # and a second export keeps them all


# An incremental export must be the full export, byte for byte, whatever changed in between.
Change = tuple[str, int, int]
changes = st.lists(st.tuples(st.sampled_from(["body", "title", "tags", "date", "add", "delete", "draft", "future"]),
                             st.integers(0, 7), st.integers(0, 3)), min_size=1, max_size=4)


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(changes, st.sampled_from((None, None, *DAMAGES)), st.integers(0, 50)),
                      min_size=2, max_size=4))
def test_incremental_export_equals_a_full_export(steps: list[tuple[list[Change], str | None, int]],
                                                 forking: None) -> None:
    """Several exports in a row, so the spare is brought up to date again and again, damaged now and then."""
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        posts = root / "posts"
        posts.mkdir()
        for number in range(5):
            _write(posts, number, f"Body {number}. [Next](/posts/post-{number + 1}/)", f"Post {number}", number % 3, 1)
        settings_ = {"BLOG_POSTS_DIR": str(posts), "BLOG_WATCH": "off", "BLOG_URL": BASE, "BLOG_PER_PAGE": "2",
                     "BLOG_FEED_ENTRIES": "3"}
        out = root / "incremental"
        export(create_app(settings_), out, processes=2)
        for step, damage, number in steps:
            for kind, post, value in step:
                _change(posts, kind, post, value)
            spare = exporter.spare_folder(out)
            if damage is not None and spare.exists():
                _damage(spare, damage, number)
            before = tree(out)
            incremental = export(create_app(settings_), out, processes=2)
            full = export(create_app(settings_), root / "full", full=True, processes=1)
            now = tree(out)
            assert now == tree(root / "full")
            assert (incremental.broken, incremental.failed) == (full.broken, full.failed)
            assert (incremental.files, incremental.written) == (len(now), len(_changed(before, now)))
            assert (incremental.unchanged, incremental.deleted) == (len(now) - incremental.written,
                                                                    len(set(before) - set(now)))
            shutil.rmtree(root / "full")


def _write(posts: Path, number: int, body: str, title: str, tag: int, day: int, **meta: Any) -> None:
    front = {"title": title, "tags": [f"t{tag}"], "categories": ["Notes" if number % 2 else "Other"],
             "date": f"2020-01-{day:02d} 10:{number:02d}:00", **meta}
    (posts / f"post-{number}.md").write_text(f"---\n{yaml.safe_dump(front)}---\n{body}\n", encoding="utf-8")


def _change(posts: Path, kind: str, number: int, value: int) -> None:
    path = posts / f"post-{number}.md"
    if kind == "add" or not path.exists():
        _write(posts, number, f"New {number}, {value}.", f"Added {number}", value, 1 + value)
    elif kind == "delete":
        path.unlink()
        return
    else:
        text = path.read_text(encoding="utf-8")
        front, body = text.split("---\n")[1:3]
        meta = yaml.safe_load(front)
        if kind == "body":
            body = f"Edited {value}. [Post {value}](/posts/post-{value}/)\n\nMore.\n"
        elif kind == "title":
            meta["title"] = f"Retitled {number} {value}"
        elif kind == "tags":
            meta["tags"] = [f"t{value}"]
        elif kind == "date":
            meta["date"] = f"2020-0{1 + value}-0{1 + value} 09:00:00"
        elif kind == "draft":
            meta["published"] = not value % 2
        elif kind == "future":
            meta["date"] = f"{2999 if value % 2 else 2020}-01-01 09:00:00"
        path.write_text(f"---\n{yaml.safe_dump(meta)}---\n{body}", encoding="utf-8")
    os.utime(path, ns=(time.time_ns(), time.time_ns()))  # a rewrite within the same clock tick is still seen


def test_an_export_in_one_process_still_collects_the_garbage_of_its_renders(make_app: AppFactory, write_post: WritePost,
                                                                           tmp_path: Path) -> None:
    # The export's own bookkeeping runs without the cyclic collector; pages rendered here by the hundred need it.
    for day in range(1, 61):
        write_post(f"2021-03-{day % 28 + 1:02d}-post-{day}.md", f"Text {day}.", title=f"Post {day}", tags=["t"])
    app = make_app()
    seen: list[bool] = []
    original = exporter._Exporter.export

    def spying(self: object, job: object) -> object:
        seen.append(gc.isenabled())
        return original(self, job)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(exporter._Exporter, "export", spying)
        report = export(app, tmp_path / "out", processes=1)
    assert report.files > 60 and seen.count(True) >= 60
    assert gc.isenabled()  # as it was before the export


@pytest.mark.parametrize("slug", ["news", "c-sharp", "a_b", "2024", "café", "two words", "a/b", "x%41", "UPPER",
                                  "quire0slug0mark", ""])
def test_listing_urls_are_built_as_the_url_map_builds_them(make_app: AppFactory, slug: str) -> None:
    app = make_app()
    with app.test_request_context("/") as context:
        adapter = context.url_adapter
        built = exporter._slug_builder(adapter.build)
        for endpoint in ("posts.category", "posts.tag", "posts.author"):
            for values in ({"slug": slug}, {"slug": slug, "page_number": 2}, {"slug": slug, "page_number": 13}):
                for _ in range(2):  # the second time from the rule built once
                    assert built(endpoint, values) == adapter.build(endpoint, values)
        for kind in ("category", "tag"):
            for name in ("feed.xml", "rss.xml", "feed.json"):
                values = {"kind": kind, "slug": slug, "name": name}
                assert built("feeds.group", values) == adapter.build("feeds.group", values)
        assert built("posts.archive") == adapter.build("posts.archive")


def test_references_are_the_links_and_sources_a_browser_follows() -> None:
    body = ('<a href="/one/">1</a> <a class=x href=\'/two/?a=1&amp;b=2\'>2</a> <img src=/three.png alt="">'
            '<a href="">empty</a> <link rel="stylesheet" href = "/s.css"> <p data-href="/no/">text</p>'
            '<pre>&lt;a href="/shown/"&gt;</pre> <A HREF="/upper/">u</A>').encode()
    assert exporter.references(body, "text/html", "https://example.com") == [
        "/one/", "/two/?a=1&b=2", "/three.png", "", "/s.css", "/upper/"]
    feed = b'<link href="https://example.com/a/"/><id>https://example.com/b/?x=1</id> https://other.example/c/'
    assert exporter.references(feed, "application/atom+xml", "https://example.com") == ["/a/", "/b/?x=1"]
