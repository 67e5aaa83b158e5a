"""The site file (site.yml): title, author, menu, footer, social links, logo, favicon and lang, live and checked."""

from __future__ import annotations

import json
from pathlib import Path

import feedparser
import pytest
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient

from blog import config, create_app
from blog.content.sitefile import SiteSettings, parse
from tests.conftest import AppFactory, WritePost, eventually

SITE_FILE = """\
title: Otter Notes
description: Field notes on otters.
lang: fr
footer: © 2026 Ada Lindqvist
logo: /static/logo.svg
author:
  name: Ada Lindqvist
  bio: Watches otters for a living.
  avatar: /static/ada.jpg
  links:
    - {title: Mastodon, url: "https://mastodon.social/@ada"}
social:
  GitHub: https://github.com/ada
  Email: mailto:ada@example.com
"""


@pytest.fixture
def site_yml(posts_dir: Path) -> Path:
    return posts_dir.parent / "site.yml"


def soup(client: FlaskClient, path: str) -> BeautifulSoup:
    response = client.get(path)
    assert response.status_code == 200, path
    return BeautifulSoup(response.data, "html.parser")


def menu(client: FlaskClient, path: str = "/") -> list[tuple[str, str, bool]]:
    links = soup(client, path).select("header nav[aria-label=Site] a")
    return [(link.text, link["href"], link.get("aria-current") == "page") for link in links]


def check(app: Flask) -> list[dict[str, object]]:
    return json.loads(app.test_cli_runner().invoke(args=["blog", "check", "--format", "json"]).output)["problems"]


@pytest.fixture
def client(make_app: AppFactory, write_post: WritePost, site_yml: Path) -> FlaskClient:
    write_post("2024-01-01-hello.md", "Hello.", title="Hello")
    write_post("2024-01-02-by-ada.md", "Mine.", title="By Ada", author="Ada Lindqvist")
    site_yml.write_text(SITE_FILE, encoding="utf-8")
    return make_app().test_client()


def test_the_site_file_sets_title_description_lang_footer_logo_and_social(client: FlaskClient) -> None:
    page = soup(client, "/")
    assert page.html["lang"] == "fr"
    assert page.select_one(".site-title").text == "Otter Notes"
    assert page.select_one(".site-title img")["src"] == "/static/logo.svg"
    assert page.find("h1").text == "Otter Notes" and page.select_one(".lede").text == "Field notes on otters."
    assert page.title.text == "Otter Notes"
    footer = page.select_one(".site-footer")
    assert "© 2026 Ada Lindqvist" in footer.p.text
    assert [(link.text, link["href"]) for link in footer.select(".social-links a")] == [
        ("GitHub", "https://github.com/ada"), ("Email", "mailto:ada@example.com")]
    assert page.find("meta", property="og:locale")["content"] == "fr"


def test_the_author_is_on_their_author_page_in_feeds_and_json_ld(client: FlaskClient) -> None:
    card = soup(client, "/author/ada-lindqvist/").select_one(".author-card")
    assert card.select_one(".author-bio").text == "Watches otters for a living."
    assert card.img["src"] == "/static/ada.jpg"
    assert [(link.text, link["href"]) for link in card.select("a")] == [("Mastodon", "https://mastodon.social/@ada")]
    atom = feedparser.parse(client.get("/feed.xml").data)
    assert atom.feed.author == "Ada Lindqvist" and atom.feed.title == "Otter Notes"
    rss = feedparser.parse(client.get("/rss.xml").data)
    assert [entry.author for entry in rss.entries] == ["Ada Lindqvist", "Ada Lindqvist"]  # a post naming none too
    assert rss.feed.language == "fr"
    feed = json.loads(client.get("/feed.json").data)
    assert feed["authors"] == [{"name": "Ada Lindqvist", "url": "https://blog.example.com/",
                                "avatar": "https://blog.example.com/static/ada.jpg"}]
    assert feed["language"] == "fr"
    data = json.loads(soup(client, "/posts/hello/").find("script", type="application/ld+json").string)
    assert data["author"] == {"@type": "Person", "name": "Ada Lindqvist",
                              "url": "https://blog.example.com/author/ada-lindqvist/",
                              "description": "Watches otters for a living.",
                              "image": "https://blog.example.com/static/ada.jpg",
                              "sameAs": ["https://mastodon.social/@ada"]}
    assert data["publisher"]["name"] == "Otter Notes"


def test_environment_variables_win_over_the_site_file(make_app: AppFactory, site_yml: Path) -> None:
    site_yml.write_text(SITE_FILE, encoding="utf-8")
    client = make_app(BLOG_TITLE="Deployed title").test_client()
    page = soup(client, "/")
    assert page.select_one(".site-title").text == "Deployed title"
    assert page.select_one(".lede").text == "Field notes on otters."


def test_without_a_site_file_the_defaults_hold(make_app: AppFactory) -> None:
    page = soup(make_app().test_client(), "/")
    assert page.html["lang"] == "en" and page.select_one(".site-title").text == config.DEFAULT_TITLE
    assert page.select_one(".lede").text == config.DEFAULT_DESCRIPTION


@pytest.mark.parametrize(("nav", "expected"), [
    ("[archive, home, {title: Talks, url: /talks/}, pages]",
     [("Archive", "/archive/"), ("Home", "/"), ("Talks", "/talks/"), ("About", "/about/")]),
    ("[{title: Code, url: 'https://github.com/ada'}]",
     [("Home", "/"), ("Categories", "/categories/"), ("Tags", "/tags/"), ("Archive", "/archive/"),
      ("About", "/about/"), ("Code", "https://github.com/ada")]),
    ("[home, tags]", [("Home", "/"), ("Tags", "/tags/")]),
])
def test_the_site_file_reorders_drops_and_adds_menu_links(make_app: AppFactory, write_page: WritePost, site_yml: Path,
                                                          nav: str, expected: list[tuple[str, str]]) -> None:
    write_page("about.md", "Me.", title="About", nav=1)
    site_yml.write_text(f"nav: {nav}\n", encoding="utf-8")
    assert [(title, url) for title, url, _ in menu(make_app().test_client())] == expected


def test_a_site_file_link_to_the_current_page_is_marked(make_app: AppFactory, write_page: WritePost,
                                                       site_yml: Path) -> None:
    write_page("talks.md", "Talks.", title="Talks")
    site_yml.write_text("nav: [home, {title: My talks, url: /talks/}]\n", encoding="utf-8")
    assert menu(make_app().test_client(), "/talks/") == [("Home", "/", False), ("My talks", "/talks/", True)]


@pytest.mark.parametrize(("text", "line", "message"), [
    ("title: [unclosed\n", 2, "not valid YAML"),
    ("title: Fine\nnav:\n  - home\n  - nowhere\n", 4, "nav[2] must be one of"),
    ("title: Fine\nsocial:\n  - {title: Evil, url: 'javascript:alert(1)'}\n", 3, "must be an http(s) URL"),
    ("author:\n  bio: no name\n", 1, "author must be a name"),
    ("lang: not a language\n", 1, "lang 'not a language' must be a language tag"),
    ("- just\n- a list\n", 1, "must be a mapping"),
])
def test_an_invalid_site_file_is_reported_with_its_line(make_app: AppFactory, site_yml: Path, text: str, line: int,
                                                        message: str) -> None:
    site_yml.write_text(text, encoding="utf-8")
    app = make_app()
    assert soup(app.test_client(), "/").select_one(".site-title").text == config.DEFAULT_TITLE  # still serves
    found = [problem for problem in check(app) if problem["file"] == "site.yml"]
    assert [(problem["severity"], problem["code"], problem["line"]) for problem in found] == [("error", "site-file", line)]
    assert message in str(found[0]["message"])


def test_check_reports_site_paths_of_the_site_file_that_lead_nowhere(make_app: AppFactory, site_yml: Path,
                                                                     posts_dir: Path, write_page: WritePost) -> None:
    (posts_dir.parent / "static").mkdir()
    (posts_dir.parent / "static" / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    write_page("talks.md", "Talks.", title="Talks")
    site_yml.write_text(SITE_FILE + "nav:\n  - home\n  - {title: Talks, url: /talks/}\n"
                        "  - {title: Uses, url: /uses/}\n  - {title: Elsewhere, url: 'https://example.org/'}\n",
                        encoding="utf-8")
    found = [(problem["severity"], problem["code"], problem["line"], problem["message"])
             for problem in check(make_app()) if problem["file"] == "site.yml"]
    assert found == [("error", "broken-image", 9, "author.avatar /static/ada.jpg points nowhere on this site"),
                     ("error", "broken-link", 18, "nav /uses/ points nowhere on this site")]


def test_unknown_keys_are_a_warning_and_the_rest_applies(make_app: AppFactory, site_yml: Path) -> None:
    site_yml.write_text("title: Kept\ntheme: minima\n", encoding="utf-8")
    app = make_app()
    assert soup(app.test_client(), "/").select_one(".site-title").text == "Kept"
    assert [(problem["severity"], problem["line"]) for problem in check(app) if problem["file"] == "site.yml"] == [
        ("warning", 2)]


def test_the_site_file_is_live_and_a_broken_edit_keeps_the_last_good_settings(make_app: AppFactory,
                                                                              site_yml: Path) -> None:
    site_yml.write_text("title: First title\n", encoding="utf-8")
    app = make_app()
    client = app.test_client()
    title = lambda: soup(client, "/").select_one(".site-title").text  # noqa: E731
    assert title() == "First title"
    site_yml.write_text("title: Second title\nnav: [home]\n", encoding="utf-8")
    eventually(lambda: title() == "Second title")
    assert [name for name, *_ in menu(client)] == ["Home"]
    site_yml.write_text("title: Third title\nnav: [home\n", encoding="utf-8")  # broken mid-edit
    eventually(lambda: any(problem["file"] == "site.yml" for problem in check(app)))
    assert title() == "Second title" and [name for name, *_ in menu(client)] == ["Home"]
    site_yml.write_text("title: Third title\n", encoding="utf-8")
    eventually(lambda: title() == "Third title")
    assert check(app) == []
    site_yml.unlink()
    eventually(lambda: title() == config.DEFAULT_TITLE)


def test_favicon_is_shipped_and_the_site_file_can_name_one(make_app: AppFactory, site_yml: Path,
                                                         posts_dir: Path) -> None:
    client = make_app().test_client()
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert soup(client, "/").find("link", rel="icon")["href"] == "/favicon.ico"
    static = posts_dir.parent / "static"
    static.mkdir()
    (static / "otter.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    site_yml.write_text("favicon: /static/otter.png\n", encoding="utf-8")
    client = make_app().test_client()
    assert client.get("/favicon.ico").data == b"\x89PNG\r\n\x1a\nnot really"
    assert soup(client, "/").find("link", rel="icon")["href"] == "/static/otter.png"


def test_the_example_site_file_is_valid_and_complete() -> None:
    text = (config.PROJECT_ROOT / "docs" / "site.example.yml").read_text(encoding="utf-8")
    settings, warnings = parse(text, "site.example.yml")
    assert warnings == ()
    assert all(getattr(settings, key) != getattr(SiteSettings(), key) for key in ("title", "author", "nav", "social"))


def test_site_dir_holds_the_whole_site(tmp_path: Path) -> None:
    site = tmp_path / "my-site"
    for folder in ("posts", "pages", "static", "theme/templates"):
        (site / folder).mkdir(parents=True)
    (site / "posts" / "2024-01-01-mine.md").write_text("---\ntitle: Mine\n---\nMy post.\n", encoding="utf-8")
    (site / "pages" / "about.md").write_text("---\ntitle: About me\nnav: 1\n---\nMe.\n", encoding="utf-8")
    (site / "site.yml").write_text("title: My own site\n", encoding="utf-8")
    (site / "static" / "me.jpg").write_bytes(b"jpeg")
    (site / "theme" / "templates" / "_footer.html").write_text("<footer>My footer</footer>\n", encoding="utf-8")
    app = create_app({"BLOG_SITE_DIR": str(site), "BLOG_WATCH": "off"})
    client = app.test_client()
    page = soup(client, "/")
    assert [card.a.text for card in page.select(".card-title")] == ["Mine"]  # none of the demo posts
    assert page.select_one(".site-title").text == "My own site" and page.footer.text == "My footer"
    assert ("About me", "/about/", False) in menu(client)
    assert client.get("/static/me.jpg").data == b"jpeg"
    assert client.get("/static/css/site.css").status_code == 200  # the default theme still serves the rest
    app.extensions["quire.watchers"].stop()
