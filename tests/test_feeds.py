"""Atom, RSS and JSON feeds, read back by feedparser the way readers' apps read them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import feedparser
import jsonschema
import pytest
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from blog.content.derived import shares_day_and_slug
from tests.conftest import CORPUS, AppFactory, Looked, WritePost

SITE = "https://blog.example.com"
JSON_FEED_SCHEMA = json.loads((Path(__file__).parent / "data" / "jsonfeed-1.1.schema.json").read_text())
FEED_PATHS = ["/feed.xml", "/rss.xml", "/feed.json"]
VERSIONS = {"/feed.xml": "atom10", "/rss.xml": "rss20", "/feed.json": "json11"}
CONTENT_TYPES = {"feed.xml": "application/atom+xml", "rss.xml": "application/rss+xml",
                 "feed.json": "application/feed+json"}
BODY = """Read [the guide](/guide/) and [the next part](part-2/), see ![a chart](chart.png "Chart"),
<img src='/img/small.png' srcset="/img/a.png 1x, b.png 2x"> and <a href=../older/>older</a>,
jump to [the notes](#notes), mail [me](mailto:ada@example.com), or visit [Python](https://python.org/).

<!--more-->

A form feed \x0c slipped into this paragraph, with <b>bold</b> & an ampersand.
"""


def parse(client: FlaskClient, path: str) -> Any:
    """Fetch a feed and parse it as a feed reader would, with the server's headers."""
    response = client.get(path)
    assert response.status_code == 200, path
    if response.mimetype == "application/feed+json":
        return read_json_feed(response.data)
    return feedparser.parse(response.data, response_headers={"content-type": response.content_type})


def read_json_feed(data: bytes) -> Any:
    """Read a JSON Feed into feedparser's shape; bozo if it breaks the 1.1 schema or has a bad date.

    feedparser 6 reads only XML feeds, so JSON Feeds are checked against the spec's rules as a schema.
    """
    document = json.loads(data)
    try:
        jsonschema.validate(document, JSON_FEED_SCHEMA)
        entries = [_json_entry(item) for item in document["items"]]
    except (jsonschema.ValidationError, ValueError) as error:
        return feedparser.FeedParserDict(bozo=1, bozo_exception=error, entries=[], feed={})
    feed = feedparser.FeedParserDict(title=document["title"], link=document.get("home_page_url"))
    return feedparser.FeedParserDict(bozo=0, version="json11", feed=feed, entries=entries)


def _json_entry(item: dict[str, Any]) -> Any:
    def parsed(name: str) -> time.struct_time | None:
        moment = dt.datetime.fromisoformat(item[name]) if name in item else None
        if moment is not None and moment.tzinfo is None:
            raise ValueError(f"{name} {item[name]!r} has no time zone")
        return moment.astimezone(dt.timezone.utc).timetuple() if moment else None

    entry = feedparser.FeedParserDict(
        id=item["id"], link=item.get("url"), title=item.get("title"), published_parsed=parsed("date_published"),
        updated_parsed=parsed("date_modified"),
        tags=[feedparser.FeedParserDict(term=tag) for tag in item.get("tags", [])],
        content=[feedparser.FeedParserDict(value=item.get("content_html") or item.get("content_text"))],
        enclosures=[],
    )
    if item.get("authors"):
        entry["author"] = item["authors"][0].get("name")
    if item.get("image"):
        entry["image"] = feedparser.FeedParserDict(href=item["image"])
    return entry


@pytest.fixture
def site(make_app: AppFactory, write_post: WritePost) -> Flask:
    """Return a site of three posts: one rich with links, one edited later, one plain."""
    write_post("2024-02-14-generators.md", BODY, title="Generators <in> practice & more",
               date="2024-02-14 09:30:00 +0100", author="Ada Lindqvist", categories=["Programming", "Python"],
               tags=["python", "performance"], cover="https://cdn.example.com/covers/gen erators.jpg")
    write_post("2024-03-01-edited.md", "Edited text.", title="Edited later", date="2024-03-01",
               last_modified_at="2024-05-20 10:00:00 +0000", tags=["python"])
    write_post("2024-04-01-plain.md", "Plain text.", title="Plain", categories="Notes")
    return make_app()


@pytest.mark.parametrize("path", FEED_PATHS)
def test_feed_parses_with_every_entry_field(site: Flask, path: str) -> None:
    feed = parse(site.test_client(), path)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == VERSIONS[path]
    assert feed.feed.title == "Quire"
    assert feed.feed.link == SITE + "/"
    titles = [entry.title for entry in feed.entries]
    assert titles == ["Plain", "Edited later", "Generators <in> practice & more"]
    links = [entry.link for entry in feed.entries]
    assert links == [f"{SITE}/posts/plain/", f"{SITE}/posts/edited/", f"{SITE}/posts/generators/"]
    rich = feed.entries[2]
    assert rich.published_parsed[:6] == (2024, 2, 14, 8, 30, 0)  # 09:30 +01:00, in UTC
    assert rich.author == "Ada Lindqvist"
    assert {"Programming", "Python", "python", "performance"} <= {tag.term for tag in rich.tags}
    content = BeautifulSoup(rich.content[0].value, "html.parser")
    assert content.find("b").text == "bold"
    assert "\x0c" not in rich.content[0].value
    edited = feed.entries[1]
    if path != "/rss.xml":  # RSS 2.0 has no updated date per item
        assert edited.updated_parsed[:6] == (2024, 5, 20, 10, 0, 0)


@pytest.mark.parametrize("path", FEED_PATHS)
def test_feed_content_links_are_absolute(site: Flask, path: str) -> None:
    entry = parse(site.test_client(), path).entries[2]
    content = BeautifulSoup(entry.content[0].value, "html.parser")
    hrefs = [link["href"] for link in content.find_all("a")]
    assert hrefs == [f"{SITE}/guide/", f"{SITE}/posts/generators/part-2/", f"{SITE}/posts/older/",
                     f"{SITE}/posts/generators/#notes", "mailto:ada@example.com", "https://python.org/"]
    sources = [image["src"] for image in content.find_all("img")]
    assert sources == [f"{SITE}/posts/generators/chart.png", f"{SITE}/img/small.png"]


def test_srcset_candidates_are_absolute(site: Flask) -> None:
    # feedparser's sanitiser drops srcset, so this reads the Atom XML itself.
    document = etree.fromstring(site.test_client().get("/feed.xml").data)
    content = document.findall("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}content")[2]
    image = BeautifulSoup(content.text, "html.parser").find("img", srcset=True)
    assert image["srcset"] == f"{SITE}/img/a.png 1x, {SITE}/posts/generators/b.png 2x"


@pytest.mark.parametrize("path", FEED_PATHS)
def test_cover_is_the_entry_image(site: Flask, path: str) -> None:
    entry = parse(site.test_client(), path).entries[2]
    cover = "https://cdn.example.com/covers/gen%20erators.jpg"
    if path == "/feed.json":
        assert entry.image["href"] == cover
    else:
        assert [(link.href, link.type) for link in entry.enclosures] == [(cover, "image/jpeg")]


@pytest.mark.parametrize("path", FEED_PATHS)
def test_data_url_cover_is_left_out_of_feeds(make_app: AppFactory, write_post: WritePost, path: str) -> None:
    write_post("2024-01-01-a.md", "Text.", title="A", cover="data:image/png;base64,iVBORw0KGgo=")
    entry = parse(make_app().test_client(), path).entries[0]
    assert entry.get("enclosures", []) == [] and "image" not in entry


def test_links_shown_in_code_are_left_alone(make_app: AppFactory, write_post: WritePost) -> None:
    code = '<a href=/docs/>docs</a> <img src="pic.png" title="a > b">'
    write_post("2024-01-01-a.md", f"Write `{code}` or:\n\n    {code}\n\n<a title='x > y' href=up/>real</a>", title="A")
    feed = parse(make_app().test_client(), "/feed.json")
    content = BeautifulSoup(feed.entries[0].content[0].value, "html.parser")
    assert [block.get_text() for block in content.find_all("code")] == [code, code + "\n"]
    assert [link["href"] for link in content.find_all("a")] == [f"{SITE}/posts/a/up/"]


def test_absolute_links_keep_a_path_prefix_in_blog_url(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2024-01-01-a.md", "[up](/about/) ![x](x.png)", title="A")
    feed = parse(make_app(BLOG_URL="https://example.com/blog").test_client(), "/feed.xml")
    content = BeautifulSoup(feed.entries[0].content[0].value, "html.parser")
    assert feed.entries[0].link == "https://example.com/blog/posts/a/"
    assert content.find("a")["href"] == "https://example.com/blog/about/"
    assert content.find("img")["src"] == "https://example.com/blog/posts/a/x.png"


@pytest.mark.parametrize("path", FEED_PATHS)
def test_entry_ids_survive_edits(make_app: AppFactory, write_post: WritePost, posts_dir: Path, path: str) -> None:
    write_post("2024-02-14-generators.md", "First version.", title="First title")
    write_post("undated.md", "No date anywhere.", title="Undated")
    app = make_app()
    before = {entry.link: entry.id for entry in parse(app.test_client(), path).entries}
    write_post("2024-02-14-generators.md", "Second version, longer.", title="Second title",
               last_modified_at="2024-06-01", tags=["new"])
    write_post("undated.md", "Edited, and saved later.", title="Undated, edited")
    earlier = time.time() - 86400
    os.utime(posts_dir / "undated.md", (earlier, earlier))  # the date of an undated post (its mtime) moves
    app.extensions["quire"].load()
    feed = parse(app.test_client(), path)
    after = {entry.link: entry.id for entry in feed.entries}
    assert after == before
    assert before[f"{SITE}/posts/generators/"] == "tag:blog.example.com,2024-02-14:generators"
    assert before[f"{SITE}/posts/undated/"] == f"{SITE}/posts/undated/"
    assert "Second title" in {entry.title for entry in feed.entries}


def test_feed_lists_the_newest_entries_up_to_the_setting(make_app: AppFactory, write_post: WritePost) -> None:
    for day in range(1, 8):
        write_post(f"2024-01-0{day}-day-{day}.md", f"Day {day}.", title=f"Day {day}")
    client = make_app(BLOG_FEED_ENTRIES="3").test_client()
    for path in FEED_PATHS:
        assert [entry.title for entry in parse(client, path).entries] == ["Day 7", "Day 6", "Day 5"]


def test_default_feed_length_is_twenty(make_app: AppFactory, write_post: WritePost) -> None:
    for number in range(25):
        write_post(f"2024-01-01-post-{number:02d}.md", "Text.", title=f"Post {number}",
                   date=(dt.datetime(2024, 1, 1) + dt.timedelta(hours=number)).isoformat(sep=" "))
    entries = parse(make_app().test_client(), "/feed.xml").entries
    assert len(entries) == 20 and entries[0].title == "Post 24"


@pytest.mark.parametrize(("path", "titles"), [
    ("/category/python/feed.xml", ["Generators <in> practice & more"]),
    ("/category/notes/rss.xml", ["Plain"]),
    ("/tag/python/feed.json", ["Edited later", "Generators <in> practice & more"]),
    ("/tag/performance/feed.xml", ["Generators <in> practice & more"]),
])
def test_category_and_tag_feeds_hold_their_posts(site: Flask, path: str, titles: list[str]) -> None:
    feed = parse(site.test_client(), path)
    assert not feed.bozo
    assert [entry.title for entry in feed.entries] == titles
    kind, slug = path.split("/")[1:3]
    assert feed.feed.link == f"{SITE}/{kind}/{slug}/"


@pytest.mark.parametrize("path", ["/category/missing/feed.xml", "/tag/missing/rss.xml", "/tag/python/feed.atom",
                                  "/author/ada-lindqvist/feed.xml"])
def test_unknown_feeds_are_404(site: Flask, path: str) -> None:
    assert site.test_client().get(path).status_code == 404


@pytest.mark.parametrize("path", [*FEED_PATHS, "/category/python/feed.xml", "/tag/python/rss.xml",
                                  "/tag/python/feed.json"])
def test_feeds_have_their_content_type_and_are_cached(site: Flask, path: str) -> None:
    client = site.test_client()
    response = client.get(path)
    assert response.mimetype == CONTENT_TYPES[path.rsplit("/", 1)[1]]
    assert response.mimetype_params["charset"] == "utf-8"
    assert response.headers["Cache-Control"].startswith("public")
    assert client.get(path, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304


def test_empty_site_has_valid_feeds(client: FlaskClient) -> None:
    for path in FEED_PATHS:
        feed = parse(client, path)
        assert not feed.bozo and feed.entries == []


@pytest.mark.parametrize("path", ["/", "/posts/generators/", "/tags/", "/archive/", "/search?q=python",
                                  "/author/ada-lindqvist/"])
def test_every_page_links_to_the_site_feeds(site: Flask, path: str) -> None:
    client = site.test_client()
    head = BeautifulSoup(client.get(path).data, "html.parser").head
    found = {link["type"]: link["href"] for link in head.find_all("link", rel="alternate")}
    assert found == {"application/atom+xml": "/feed.xml", "application/rss+xml": "/rss.xml",
                     "application/feed+json": "/feed.json"}
    for href in found.values():
        assert not parse(client, href).bozo


@pytest.mark.parametrize("path", ["/category/python/", "/tag/python/"])
def test_category_and_tag_pages_link_their_own_feeds(site: Flask, path: str) -> None:
    client = site.test_client()
    head = BeautifulSoup(client.get(path).data, "html.parser").head
    hrefs = [link["href"] for link in head.find_all("link", rel="alternate")]
    assert hrefs[3:] == [path + "feed.xml", path + "rss.xml", path + "feed.json"]
    assert all(not parse(client, href).bozo for href in hrefs)


@pytest.fixture(scope="module")
def corpus_client() -> FlaskClient:
    from blog import create_app

    app = create_app({"BLOG_POSTS_DIR": str(CORPUS), "BLOG_WATCH": "off", "BLOG_URL": SITE,
                      "BLOG_EXTENSIONS": ".md,.markdown,.mkdn,.text"})
    return app.test_client()


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not beside the checkout")
def test_every_corpus_feed_parses_and_every_entry_link_answers(corpus_client: FlaskClient) -> None:
    snapshot = corpus_client.application.extensions["quire"].snapshot
    paths = list(FEED_PATHS)
    for kind, groups in (("category", snapshot.categories), ("tag", snapshot.tags)):
        paths += [f"/{kind}/{slug}/{name}" for slug in groups for name in ("feed.xml", "rss.xml", "feed.json")]
    links: set[str] = set()
    problems = []
    for path in paths:
        feed = parse(corpus_client, path)
        if feed.bozo:
            problems.append((path, repr(feed.bozo_exception)))
        if len({entry.id for entry in feed.entries}) != len(feed.entries):
            problems.append((path, "duplicate entry ids"))
        for entry in feed.entries:
            if not all(entry.get(field) for field in ("title", "link", "published_parsed", "content")):
                problems.append((path, entry.get("link"), "missing field"))
            links.add(entry.link)
    assert problems == []
    assert len(paths) > 30 and len(links) >= 20
    answers = {link: corpus_client.get(link.removeprefix(SITE)).status_code for link in sorted(links)}
    assert {link: status for link, status in answers.items() if status != 200} == {}


def test_posts_sharing_a_day_and_slug_get_distinct_ids(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("a/2024-01-01-notes.md", "A.", title="Notes A", categories="a")
    write_post("b/2024-01-01-notes.md", "B.", title="Notes B", categories="b")
    write_post("2024-01-02-other.md", "C.", title="Other")
    client = make_app(BLOG_PERMALINK="/:categories/:slug/").test_client()
    for path in FEED_PATHS:
        ids = {entry.title: entry.id for entry in parse(client, path).entries}
        assert ids == {"Other": "tag:blog.example.com,2024-01-02:other", "Notes A": f"{SITE}/a/notes/",
                       "Notes B": f"{SITE}/b/notes/"}


def test_posts_sharing_a_day_in_far_apart_offsets_get_distinct_ids(make_app: AppFactory, write_post: WritePost) -> None:
    # The same calendar day 47 hours apart, with posts of the days between sorted among them.
    write_post("a/notes.md", "A.", title="Notes A", date="2024-01-01 23:30:00 -11:00", categories="a")
    write_post("b/notes.md", "B.", title="Notes B", date="2024-01-01 00:30:00 +13:00", categories="b")
    for hour in range(0, 48, 4):
        write_post(f"between-{hour}.md", "C.", title=f"Between {hour}",
                   date=f"2024-01-{1 + hour // 24:02d} {hour % 24:02d}:00:00 +00:00")
    client = make_app(BLOG_PERMALINK="/:categories/:slug/").test_client()
    ids = {entry.title: entry.id for entry in parse(client, "/feed.xml").entries}
    assert ids["Notes A"] == f"{SITE}/a/notes/" and ids["Notes B"] == f"{SITE}/b/notes/"
    assert ids["Between 4"] == "tag:blog.example.com,2024-01-01:between-4"


def test_a_feed_id_looks_only_at_the_posts_of_nearby_days(make_app: AppFactory, write_post: WritePost) -> None:
    """The id of a feed entry never looks at every post: a worker touching them all copies its shared memory."""
    start = dt.date(2023, 1, 1)
    for day in range(300):
        write_post(f"{start + dt.timedelta(days=day)}-post-{day}.md", "Text.", title=f"Day {day}")
    snapshot = make_app().extensions["quire"].snapshot
    looked = Looked(snapshot.posts)
    nearby = dataclasses.replace(snapshot, posts=looked)
    assert not shares_day_and_slug(nearby, snapshot.posts[150])
    assert 0 < len(looked.seen) < 30


HIDDEN_HANDLER = '<img src="/a.png" title=" src=x onerror=alert(1) "> <a href="b/" title="href=y onclick=alert(2)">b</a>'


def _entry_html(client: FlaskClient, path: str) -> str:
    """Return the first entry's HTML exactly as the feed carries it, before any reader cleans it."""
    data = client.get(path).data
    if path == "/feed.json":
        return json.loads(data)["items"][0]["content_html"]
    namespaces = {"atom": "http://www.w3.org/2005/Atom"}
    return etree.fromstring(data).find("atom:entry/atom:content", namespaces).text


@pytest.mark.parametrize("sanitize", ["1", "0"])
@pytest.mark.parametrize("path", ["/feed.xml", "/feed.json"])
def test_a_link_inside_an_attribute_value_lets_no_handler_out(make_app: AppFactory, write_post: WritePost,
                                                              path: str, sanitize: str) -> None:
    write_post("2024-01-01-a.md", HIDDEN_HANDLER, title="A")
    content = BeautifulSoup(_entry_html(make_app(BLOG_SANITIZE=sanitize).test_client(), path), "lxml")
    image, link = content.find("img"), content.find("a")
    assert image["src"] == f"{SITE}/a.png" and link["href"] == f"{SITE}/posts/a/b/"
    assert image["title"] == " src=x onerror=alert(1) " and link["title"] == "href=y onclick=alert(2)"
    assert not [name for tag in content.find_all(True) for name in tag.attrs if name.startswith("on")]


@pytest.mark.parametrize("path", ["/feed.xml", "/feed.json"])
def test_sanitized_feeds_are_cleaned_after_links_are_made_absolute(make_app: AppFactory, write_post: WritePost,
                                                                   path: str) -> None:
    write_post("2024-01-01-a.md", '<p><a href="/x/" onclick="steal()">x</a><img src=a.png onerror=alert(1)></p>'
               '<a href="javascript:alert(3)">j</a><script>alert(4)</script>', title="A")
    html = _entry_html(make_app(BLOG_SANITIZE="1").test_client(), path)
    content = BeautifulSoup(html, "lxml")
    assert [link.get("href") for link in content.find_all("a")] == [f"{SITE}/x/", None]
    assert content.find("img")["src"] == f"{SITE}/posts/a/a.png"
    assert "alert" not in html and "steal" not in html and not content.find("script")
