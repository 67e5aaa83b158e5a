"""Discovery: sitemap against its schema, robots.txt, canonical and share meta, JSON-LD, archive, related posts."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from urllib.parse import quote
from urllib.robotparser import RobotFileParser

import pytest
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from blog.content import derived
from blog.content.derived import related
from tests.conftest import AppFactory, WritePost

SITE = "https://blog.example.com"
SITEMAP_SCHEMA = etree.XMLSchema(etree.parse(str(Path(__file__).parent / "data" / "sitemap.xsd")))
NS = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
HOSTILE_TITLE = 'Break </script><script>alert("x")</script> & <b>out</b>'


def page(client: FlaskClient, path: str) -> BeautifulSoup:
    """Return the parsed HTML at ``path``, which must answer 200."""
    response = client.get(path)
    assert response.status_code == 200, path
    return BeautifulSoup(response.data, "html.parser")


@pytest.fixture
def site(make_app: AppFactory, write_post: WritePost) -> Flask:
    """Return a site of seven posts over two years, sharing tags and categories, three to a page."""
    write_post("2023-11-05-old.md", "Old.", title="Old post", tags=["python"], categories="Code")
    write_post("2023-12-24-winter.md", "Cold.", title="Winter", tags=["life"])
    write_post("2024-01-10-gens.md", "Gens.", title="Generators", tags=["python", "performance"], categories="Code",
               author="Ada Lindqvist", last_modified_at="2024-06-01 12:00:00 +0000",
               cover="https://cdn.example.com/covers/gens.jpg")
    write_post("2024-01-20-iters.md", "Iters.", title="Iterators", tags=["python", "performance"], categories="Code")
    write_post("2024-02-02-async.md", "Async.", title="Async", tags=["python"], categories="Other")
    write_post("2024-02-03-cats.md", "Cats.", title="Cats", tags=["life"], categories="Code")
    write_post("2024-02-04-hostile.md", "Body.", title=HOSTILE_TITLE, description="Fish & chips, 1 < 2")
    return make_app(BLOG_PER_PAGE="3")


def test_sitemap_is_valid_and_lists_every_public_page(site: Flask, write_post: WritePost) -> None:
    write_post("_drafts/secret.md", "Draft.", title="Secret")
    write_post("2024-02-05-café-ünï.md", "Accents.", title="Café")
    site.extensions["quire"].load()
    response = site.test_client().get("/sitemap.xml")
    assert response.mimetype == "application/xml" and response.headers["Cache-Control"].startswith("public")
    document = etree.fromstring(response.data)
    SITEMAP_SCHEMA.assertValid(document)
    entries = {url.findtext("s:loc", namespaces=NS): url.findtext("s:lastmod", namespaces=NS)
               for url in document.findall("s:url", NS)}
    snapshot = site.extensions["quire"].snapshot
    expected = {"/", "/page/2/", "/page/3/", "/archive/", "/archive/2023/", "/archive/2024/", "/categories/", "/tags/",
                "/category/code/", "/category/code/page/2/", "/category/other/", "/tag/python/", "/tag/python/page/2/",
                "/tag/performance/", "/tag/life/", "/author/ada-lindqvist/", *(post.url for post in snapshot.posts)}
    assert set(entries) == {SITE + quote(path) for path in expected}
    assert not any("secret" in loc for loc in entries)
    assert SITE + "/posts/caf%C3%A9-%C3%BCn%C3%AF/" in entries and all(loc.isascii() for loc in entries)
    edited = dt.datetime(2024, 6, 1, 12, tzinfo=dt.timezone.utc)
    assert dt.datetime.fromisoformat(entries[SITE + "/posts/gens/"]) == edited
    assert entries[SITE + "/"] == entries[SITE + "/posts/gens/"]  # the home page changed when its newest post did
    for loc in entries:
        assert site.test_client().get(loc.removeprefix(SITE)).status_code == 200, loc


def test_empty_sitemap_is_valid(client: FlaskClient) -> None:
    SITEMAP_SCHEMA.assertValid(etree.fromstring(client.get("/sitemap.xml").data))


def test_robots_txt_names_the_sitemap(site: Flask) -> None:
    response = site.test_client().get("/robots.txt")
    assert response.mimetype == "text/plain" and response.headers["Cache-Control"].startswith("public")
    robots = RobotFileParser()
    robots.parse(response.get_data(as_text=True).splitlines())
    assert robots.site_maps() == [f"{SITE}/sitemap.xml"]
    assert robots.can_fetch("*", f"{SITE}/posts/gens/")
    assert not robots.can_fetch("*", f"{SITE}/search?q=python")
    # Crawlers match "?" literally (robotparser cannot tell): a post at /search-tips/ stays crawlable.
    assert "Disallow: /search?" in response.get_data(as_text=True).splitlines()


@pytest.mark.parametrize("path", ["/", "/page/2/", "/posts/gens/", "/archive/", "/tags/", "/categories/",
                                  "/tag/python/", "/category/code/page/2/", "/author/ada-lindqvist/", "/search"])
def test_every_page_has_a_canonical_url_and_share_meta(site: Flask, path: str) -> None:
    head = page(site.test_client(), path + ("?q=python" if path == "/search" else "")).head
    canonical = head.find_all("link", rel="canonical")
    assert [link["href"] for link in canonical] == [SITE + path]
    meta = {tag.get("property") or tag.get("name"): tag["content"] for tag in head.find_all("meta", content=True)}
    assert meta["og:url"] == SITE + path and meta["og:site_name"] == "Quire"
    title = "Generators" if path == "/posts/gens/" else head.title.get_text()  # a post shares its own title
    assert meta["og:title"] == meta["twitter:title"] == title
    assert meta["og:description"] == meta["description"] == meta["twitter:description"]


def test_post_share_meta_uses_the_post_and_its_cover(site: Flask) -> None:
    head = page(site.test_client(), "/posts/gens/").head
    meta = {tag.get("property") or tag.get("name"): tag["content"] for tag in head.find_all("meta", content=True)}
    assert meta["og:type"] == "article" and meta["og:title"] == "Generators"
    assert meta["og:image"] == meta["twitter:image"] == "https://cdn.example.com/covers/gens.jpg"
    assert meta["twitter:card"] == "summary_large_image"
    assert dt.datetime.fromisoformat(meta["article:modified_time"]).year == 2024
    assert [tag["content"] for tag in head.find_all("meta", property="article:tag")] == ["python", "performance"]


def test_post_has_blog_posting_json_ld(site: Flask) -> None:
    scripts = page(site.test_client(), "/posts/gens/").find_all("script", type="application/ld+json")
    assert len(scripts) == 1
    data = json.loads(scripts[0].string)
    assert data["@context"] == "https://schema.org" and data["@type"] == "BlogPosting"
    assert data["headline"] == "Generators" and data["url"] == data["mainEntityOfPage"]["@id"] == SITE + "/posts/gens/"
    assert dt.datetime.fromisoformat(data["datePublished"]) == dt.datetime.fromisoformat("2024-01-10T00:00:00+00:00")
    assert dt.datetime.fromisoformat(data["dateModified"]) == dt.datetime(2024, 6, 1, 12, tzinfo=dt.timezone.utc)
    assert data["author"] == {"@type": "Person", "name": "Ada Lindqvist", "url": SITE + "/author/ada-lindqvist/"}
    assert data["image"] == "https://cdn.example.com/covers/gens.jpg"
    assert data["keywords"] == ["python", "performance"] and data["articleSection"] == ["Code"]


def test_home_page_has_web_site_json_ld_with_search(site: Flask) -> None:
    client = site.test_client()
    scripts = page(client, "/").find_all("script", type="application/ld+json")
    data = json.loads(scripts[0].string)
    assert data["@type"] == "WebSite" and data["url"] == SITE + "/" and data["name"] == "Quire"
    target = data["potentialAction"]["target"]
    assert target == SITE + "/search?q={search_term_string}"
    found = page(client, target.removeprefix(SITE).replace("{search_term_string}", "iterators"))
    assert [link.get_text() for link in found.select(".search-hit .card-title a")] == ["Iterators"]
    assert page(client, "/page/2/").find_all("script", type="application/ld+json") == []


def test_json_ld_cannot_break_out_of_its_script(site: Flask) -> None:
    raw = site.test_client().get("/posts/hostile/").get_data(as_text=True)
    block = raw.split('<script type="application/ld+json">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and ">" not in block and "&" not in block
    data = json.loads(block)
    assert data["headline"] == HOSTILE_TITLE and data["description"] == "Fish & chips, 1 < 2"
    scripts = BeautifulSoup(raw, "html.parser").find_all("script", type=lambda value: value != "application/ld+json")
    assert [script["src"].split("?")[0] for script in scripts] == ["/static/js/copy.js"]  # only the theme's own
    assert all(script.string is None for script in scripts)


@pytest.mark.parametrize(("path", "prev", "next"), [
    ("/", None, "/page/2/"),
    ("/page/2/", "/", "/page/3/"),
    ("/page/3/", "/page/2/", None),
    ("/tag/python/page/2/", "/tag/python/", None),
    ("/category/code/", None, "/category/code/page/2/"),
    ("/tag/life/", None, None),
])
def test_paginated_pages_carry_prev_and_next(site: Flask, path: str, prev: str | None, next: str | None) -> None:
    head = page(site.test_client(), path).head
    found = {rel: head.find("link", rel=rel) for rel in ("prev", "next")}
    assert {rel: link["href"] if link else None for rel, link in found.items()} == \
        {"prev": SITE + prev if prev else None, "next": SITE + next if next else None}


def test_archive_lists_years_and_months_with_counts_linking_to_each_year(site: Flask) -> None:
    archive = page(site.test_client(), "/archive/")
    years = [(section.h2.a.get_text(), section.h2.a["href"], section.h2.select_one(".count").get_text())
             for section in archive.select(".archive-year")]
    assert years == [("2024", "/archive/2024/", "5 posts"), ("2023", "/archive/2023/", "2 posts")]
    months = [(link.get_text(), link["href"], link.find_next_sibling(class_="count").get_text())
              for link in archive.select(".archive-months a")]
    assert months == [("February 2024", "/archive/2024/#month-2024-02", "3 posts"),
                      ("January 2024", "/archive/2024/#month-2024-01", "2 posts"),
                      ("December 2023", "/archive/2023/#month-2023-12", "1 post"),
                      ("November 2023", "/archive/2023/#month-2023-11", "1 post")]
    assert archive.select(".archive-list") == []  # the posts are on the years' pages


def test_archive_year_page_lists_its_posts_by_month(site: Flask) -> None:
    year = page(site.test_client(), "/archive/2024/")
    months = [(heading["id"], heading.contents[0].strip(), heading.select_one(".count").get_text())
              for heading in year.select("h2")]
    assert months == [("month-2024-02", "February 2024", "3 posts"), ("month-2024-01", "January 2024", "2 posts")]
    listed = [link.get_text() for link in year.select(".archive-list a")]
    assert listed == [HOSTILE_TITLE, "Cats", "Async", "Iterators", "Generators"]
    items = year.select(".archive-list li")
    assert all(item.select_one(".reading-time").get_text() == "1 min read" for item in items)
    assert [link.get_text() for link in page(site.test_client(), "/archive/2023/").select(".archive-list a")] == \
        ["Winter", "Old post"]


@pytest.mark.parametrize("path", ["/archive/2022/", "/archive/0/", "/archive/99999/", "/archive/2024"])
def test_archive_year_without_posts_is_not_found(site: Flask, path: str) -> None:
    assert site.test_client().get(path).status_code in {404, 308}


def test_archive_months_follow_the_site_time_zone(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2024-01-31-late.md", "Late.", title="Late", date="2024-01-31 23:30:00 +0000")
    client = make_app(BLOG_TIMEZONE="Europe/Paris").test_client()
    assert [link.get_text() for link in page(client, "/archive/").select(".archive-months a")] == ["February 2024"]
    assert [heading.contents[0].strip() for heading in page(client, "/archive/2024/").select("h2")] == ["February 2024"]


def test_related_posts_share_the_most_tags_and_categories(site: Flask) -> None:
    listed = page(site.test_client(), "/posts/gens/").select(".related li a")
    # Iterators shares two tags and the category; Old post a tag and the category; Async one tag.
    assert [link.get_text() for link in listed] == ["Iterators", "Old post", "Async"]
    assert listed[0]["href"] == "/posts/iters/"
    alone = page(site.test_client(), "/posts/hostile/")
    assert alone.select(".related") == []


def test_related_posts_are_computed_once_per_snapshot(site: Flask, write_post: WritePost) -> None:
    store = site.extensions["quire"]
    snapshot = store.snapshot
    post = snapshot.by_url["/posts/gens/"]
    assert related(snapshot, post, 3) is related(snapshot, post, 3)
    write_post("2024-03-01-newer.md", "New.", title="Newer", tags=["python", "performance"], categories="Code")
    store.load()
    fresh = store.snapshot
    found = related(fresh, fresh.by_url["/posts/gens/"], 3)
    assert [other.title for other in found] == ["Newer", "Iterators", "Old post"]


def test_related_posts_of_a_large_tag_come_from_the_posts_nearest_in_date(
        make_app: AppFactory, write_post: WritePost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(derived, "WINDOW", 4)  # candidates per tag: the four nearest in date
    for day in range(1, 21):
        write_post(f"2024-01-{day:02d}-day{day}.md", "Day.", title=f"Day {day}", tags=["diary"])
    write_post("2024-01-02-twin.md", "Twin.", title="Twin", tags=["diary", "twin"])
    write_post("2024-01-30-far-twin.md", "Far.", title="Far twin", tags=["diary", "twin"])
    listed = page(make_app().test_client(), "/posts/day3/").select(".related li a")
    # The far twin shares more, but is not among the posts nearest Day 3 in date, so it is no candidate.
    assert [link.get_text() for link in listed] == ["Day 5", "Day 4", "Day 2"]
    # Each tag gives its own nearest posts: the small tag "twin" brings the far twin to the twin.
    twin = page(make_app().test_client(), "/posts/twin/").select(".related li a")
    assert [link.get_text() for link in twin][0] == "Far twin"


def test_related_posts_are_the_best_ranked_candidates(make_app: AppFactory, write_post: WritePost,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import random

    monkeypatch.setattr(derived, "WINDOW", 6)
    chance = random.Random(15)
    for number in range(60):  # ties in score and date on purpose: the URL decides
        write_post(f"2024-0{1 + number % 3}-{1 + number % 9:02d}-p{number}.md", "Text.", title=f"P{number}",
                   tags=chance.sample(["a", "b", "c", "d", "e"], chance.randint(0, 3)),
                   categories=chance.sample(["X", "Y", "Z"], chance.randint(0, 2)))
    snapshot = make_app().extensions["quire"].snapshot

    def expected(post):  # type: ignore[no-untyped-def] - scored and sorted in full, as the ranking is defined
        candidates = {other.url: other for groups, terms in ((snapshot.tags, post.tags), (snapshot.categories, post.categories))
                      for term in terms for other in derived.window(groups[term.slug].posts, post)}
        candidates.pop(post.url, None)
        tags, categories = {term.slug for term in post.tags}, {term.slug for term in post.categories}
        score = {url: derived.TAG_WEIGHT * len(tags & {term.slug for term in other.tags})
                 + derived.CATEGORY_WEIGHT * len(categories & {term.slug for term in other.categories})
                 for url, other in candidates.items()}
        return sorted(candidates.values(), key=lambda other: (-score[other.url], -other.sort_key[0], other.url))[:4]

    assert any(len(expected(post)) == 4 for post in snapshot.posts)
    for post in snapshot.posts:
        assert [other.url for other in derived._related(snapshot, post, 4)] == [other.url for other in expected(post)]


def test_reading_time_on_posts_and_listings(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2024-01-01-long.md", "word " * 1100, title="Long")
    client = make_app().test_client()
    assert "5 min read" in page(client, "/posts/long/").select_one(".post-meta").get_text()
    assert "5 min read" in page(client, "/").select_one(".card .post-meta").get_text()
