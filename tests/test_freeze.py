"""``blog freeze``: every page, feed and asset written as files, and every link inside the export resolves."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask import Flask

from blog import freeze as exporter
from tests.conftest import AppFactory, WritePost

BASE = "https://blog.example.com"


@pytest.fixture
def site(make_app: AppFactory, write_post: WritePost) -> Flask:
    for day in range(1, 14):  # more than a page, so pagination is crawled too
        write_post(f"2020-01-{day:02d}-post-{day}.md", f"Body {day}. [Next](/posts/post-{day + 1}/)" if day < 13
                   else "Last. [First]({% post_url 2020-01-01-post-1 %})",
                   title=f"Post {day}", categories=["Notes"], tags=[f"t{day % 3}"], author="Ada")
    write_post("2020-02-01-café.md", "Unicode URL.", title="Café")
    write_post("2020-02-02-page.md", "A page.", title="About", permalink="/about.html")
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
    assert "0 broken links" in output
    files = {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}
    expected = {
        "index.html", "page/2/index.html", "page/3/index.html", "posts/post-1/index.html", "posts/post-13/index.html",
        "posts/café/index.html", "about.html", "archive/index.html", "categories/index.html", "tags/index.html",
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
    assert "Exporting" in result.stderr  # the progress bar's label (a bar only on a terminal)
    errors = result.stderr.splitlines()
    assert errors[1] == "/posts/nowhere/: answered 404, not exported"
    # Each file that links there, once however often it does; feeds carry the link made absolute.
    assert sorted(errors[2:]) == [f"{name}: broken link /posts/nowhere/" for name in
                                  ("feed.json", "feed.xml", "index.html", "posts/one/index.html", "rss.xml")]
    assert result.stdout.strip().endswith(f"files written to {tmp_path / 'site'}, 6 broken links")


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
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []
