"""Escaping: hostile front matter stays text in HTML, meta tags, JSON-LD and feeds; unsafe covers are dropped;
BLOG_SANITIZE cleans post bodies."""

from __future__ import annotations

import json

import feedparser
import pytest
from bs4 import BeautifulSoup
from flask import Flask
from lxml import etree

from tests.conftest import AppFactory, WritePost

SCRIPT = '<script>alert("x")</script>'
QUOTE = '" onmouseover="alert(1)" x="'
JS_URL = "javascript:alert(1)"
HOSTILE = f"{SCRIPT} {QUOTE} {JS_URL}"
UNSAFE_COVERS = [JS_URL, " JavaScript:alert(1)", "java\tscript:alert(1)", "data:text/html;base64,PHNjcmlwdD4=",
                 "vbscript:msgbox(1)", "file:///etc/passwd"]
LISTINGS = ["/", "/archive/2024/", "/categories/", "/tags/", "/search?q=alert"]


@pytest.fixture
def site(make_app: AppFactory, write_post: WritePost) -> Flask:
    """Return a site whose one post has a hostile value in every front-matter field."""
    write_post("2024-01-01-hostile.md", "Body text alert.", title=HOSTILE, author=HOSTILE, categories=[HOSTILE],
               tags=[HOSTILE], description=HOSTILE, cover=JS_URL, slug="hostile")
    return make_app()


def _no_active_content(soup: BeautifulSoup, where: str) -> None:
    for script in soup.find_all("script"):
        assert script.get("type") == "application/ld+json" or script.get("src", "").startswith("/static/"), where
    for element in soup.find_all(True):
        for name, value in element.attrs.items():
            assert not name.startswith("on"), (where, element.name, name)
            values = value if isinstance(value, list) else [value]
            assert not any(str(item).strip().lower().startswith(("javascript:", "data:text")) for item in values), \
                (where, element.name, name, value)


def test_html_pages_keep_hostile_fields_as_text(site: Flask) -> None:
    [post] = site.extensions["quire"].snapshot.posts
    paths = [*LISTINGS, post.url, f"/category/{post.categories[0].slug}/", f"/tag/{post.tags[0].slug}/",
             f"/author/{post.author.slug}/"]
    client = site.test_client()
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        soup = BeautifulSoup(response.data, "html.parser")
        _no_active_content(soup, path)
        assert HOSTILE in soup.get_text(), path


def test_post_page_shows_each_field_as_written(site: Flask) -> None:
    soup = BeautifulSoup(site.test_client().get("/posts/hostile/").data, "html.parser")
    assert soup.find("h1").get_text(strip=True) == HOSTILE
    assert soup.find("title").get_text().startswith(HOSTILE)
    metas = {tag.get("property") or tag.get("name"): tag.get("content") for tag in soup.find_all("meta")}
    assert metas["og:title"] == HOSTILE and metas["twitter:title"] == HOSTILE
    assert 'alert("x")' in metas["description"] and QUOTE in metas["description"]  # tags stripped, quotes kept
    assert metas["article:tag"] == HOSTILE
    assert "og:image" not in metas and "twitter:image" not in metas  # the javascript: cover was dropped
    assert soup.select_one(".post-cover") is None


@pytest.mark.parametrize("path", ["/", "/posts/hostile/"])
def test_json_ld_is_json_and_cannot_close_its_script(site: Flask, path: str) -> None:
    raw = site.test_client().get(path).get_data(as_text=True)
    blocks = raw.split('<script type="application/ld+json">')[1:]
    assert blocks
    for block in blocks:
        text = block.split("</script>", 1)[0]
        assert "<" not in text and ">" not in text
        json.loads(text)
    if path == "/posts/hostile/":
        data = json.loads(blocks[0].split("</script>", 1)[0])
        assert data["headline"] == HOSTILE
        assert "image" not in data


@pytest.mark.parametrize("path", ["/feed.xml", "/rss.xml", "/category/{category}/feed.xml", "/tag/{tag}/rss.xml"])
def test_xml_feeds_carry_fields_as_text(site: Flask, path: str) -> None:
    [post] = site.extensions["quire"].snapshot.posts
    response = site.test_client().get(path.format(category=post.categories[0].slug, tag=post.tags[0].slug))
    assert response.status_code == 200
    root = etree.fromstring(response.data)
    assert not [element for element in root.iter() if isinstance(element.tag, str)
                and etree.QName(element).localname.lower() == "script"]
    feed = feedparser.parse(response.data)
    assert not feed.bozo
    [entry] = feed.entries
    assert entry.title == HOSTILE
    for element in root.iter():
        assert not any(value.strip().lower().startswith("javascript:") for value in element.attrib.values())
    assert not [link for link in entry.get("links", []) if link.get("href", "").startswith("javascript:")]


def test_json_feed_carries_fields_as_strings(site: Flask) -> None:
    data = json.loads(site.test_client().get("/feed.json").data)
    [item] = data["items"]
    assert item["title"] == HOSTILE
    assert "image" not in item and "banner_image" not in item
    assert all(author["name"] == HOSTILE for author in item.get("authors", []))
    assert HOSTILE in item.get("tags", [HOSTILE])


@pytest.mark.parametrize("cover", UNSAFE_COVERS)
def test_unsafe_covers_are_dropped_and_reported(make_app: AppFactory, write_post: WritePost, cover: str) -> None:
    write_post("2024-01-01-post.md", "Body.", title="Post", cover=cover)
    app = make_app()
    [post] = app.extensions["quire"].snapshot.posts
    assert post.cover is None and post.cover_url is None
    codes = [problem.code for problem in app.extensions["quire"].snapshot.problems["2024-01-01-post.md"]]
    assert codes == ["unsafe-cover"]
    body = app.test_client().get("/posts/post/").get_data(as_text=True)
    assert cover.strip() not in body


@pytest.mark.parametrize("cover", ["https://cdn.example.com/a.jpg", "//cdn.example.com/a.jpg", "http://x.example/a.png"])
def test_safe_covers_are_kept(make_app: AppFactory, write_post: WritePost, cover: str) -> None:
    write_post("2024-01-01-post.md", "Body.", title="Post", cover=cover)
    [post] = make_app().extensions["quire"].snapshot.posts
    assert post.cover == cover


HOSTILE_BODY = """Hello <script>alert(1)</script> world.

<img src="x.png" onerror="alert(2)"> <a href="javascript:alert(3)">click</a> <a href="https://ok.example/">ok</a>

<iframe src="https://evil.example/"></iframe><style>body{display:none}</style>
<p style="color:red" onclick="alert(4)">styled</p>

```python
print("<b>kept as code</b>")
```

| a | b |
|---|---|
| 1 | 2 |
"""


def test_sanitize_cleans_post_bodies(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2024-01-01-post.md", HOSTILE_BODY, title="Post")
    raw = make_app(BLOG_SANITIZE="1").test_client().get("/posts/post/").get_data(as_text=True)
    article = BeautifulSoup(raw, "html.parser").find("article")
    _no_active_content(article, "article")
    assert not article.find_all(["script", "iframe", "style"]) and not article.find_all(style=True)
    assert [link["href"] for link in article.find_all("a", href=True) if "ok.example" in link["href"]] == [
        "https://ok.example/"]
    assert article.find("img")["src"] == "x.png"
    assert 'print("<b>kept as code</b>")' in article.find("pre").get_text()
    assert article.select_one(".highlight") is not None  # Pygments' classes survive
    assert article.find("table") is not None and "styled" in article.get_text()


def test_without_sanitize_trusted_html_passes_through(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2024-01-01-post.md", HOSTILE_BODY, title="Post")
    article = BeautifulSoup(make_app().test_client().get("/posts/post/").data, "html.parser").find("article")
    assert article.find("iframe") is not None  # the author's own HTML is the author's choice by default
