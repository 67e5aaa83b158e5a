"""Pages: served at their path, in the menu, the sitemap and search, never in listings or feeds, and live."""

from __future__ import annotations

import json
from pathlib import Path

import feedparser
import pytest
from bs4 import BeautifulSoup
from flask.testing import FlaskClient

from blog.content.post import page_url
from tests.conftest import AppFactory, WritePost, eventually


def soup(client: FlaskClient, path: str) -> BeautifulSoup:
    response = client.get(path)
    assert response.status_code == 200, path
    return BeautifulSoup(response.data, "html.parser")


def menu(client: FlaskClient, path: str = "/") -> list[tuple[str, str, bool]]:
    links = soup(client, path).select("header nav[aria-label=Site] a")
    return [(link.text, link["href"], link.get("aria-current") == "page") for link in links]


@pytest.mark.parametrize(("relative", "url", "jekyll_url"), [
    ("about.md", "/about/", "/about.html"),
    ("projects/index.md", "/projects/", "/projects/"),
    ("docs/install.markdown", "/docs/install/", "/docs/install.html"),
    ("index.md", "/", "/"),
    ("contact.html", "/contact/", "/contact.html"),
])
def test_page_urls_follow_the_file_path(relative: str, url: str, jekyll_url: str) -> None:
    assert page_url(relative) == url
    assert page_url(relative, jekyll=True) == jekyll_url


@pytest.fixture
def site(make_app: AppFactory, write_post: WritePost, write_page: WritePost) -> FlaskClient:
    write_post("2024-01-01-hello.md", "A post about otters.", title="Hello", tags=["otters"], categories=["notes"])
    write_post("2024-01-02-second.md", "More about otters.", title="Second", tags=["otters"])
    write_page("about.md", "Who writes about otters here.", title="About us", nav=2)
    write_page("projects/index.md", "Things I made.", title="Projects", nav=1)
    write_page("projects/quire.md", "A blog server.", title="Quire")
    write_page("colophon.md", "Set in system fonts; otters throughout.", title="Colophon")
    write_page("elsewhere.md", "Moved.", title="Moved page", permalink="/somewhere/else/")
    return make_app().test_client()


@pytest.mark.parametrize(("path", "title", "text"), [
    ("/about/", "About us", "Who writes about otters here."),
    ("/projects/", "Projects", "Things I made."),
    ("/colophon/", "Colophon", "Set in system fonts"),
    ("/somewhere/else/", "Moved page", "Moved."),
])
def test_pages_are_served_at_their_path_or_permalink(site: FlaskClient, path: str, title: str, text: str) -> None:
    page = soup(site, path)
    assert page.find("h1").text == title
    assert text in page.select_one(".post-body").text
    assert page.title.text.startswith(title + " · ")
    assert page.select(".post-meta") == []  # no date, author or reading time: a page is no post
    assert "article:published_time" not in str(page)


def test_a_page_url_without_its_slash_redirects_and_unknown_ones_are_404(site: FlaskClient) -> None:
    response = site.get("/about")
    assert response.status_code == 308 and response.headers["Location"].endswith("/about/")
    assert site.get("/elsewhere/").status_code == 404  # a page with a permalink is only there
    assert site.get("/pages/about/").status_code == 404


def test_pages_with_nav_join_the_menu_in_their_order_and_the_current_one_is_marked(site: FlaskClient) -> None:
    assert menu(site) == [("Home", "/", True), ("Categories", "/categories/", False), ("Tags", "/tags/", False),
                          ("Archive", "/archive/", False), ("Projects", "/projects/", False),
                          ("About us", "/about/", False)]
    assert [current for *_, current in menu(site, "/about/")] == [False, False, False, False, False, True]
    assert not any(current for *_, current in menu(site, "/posts/hello/"))


def test_the_section_holding_the_page_shown_is_marked_too(site: FlaskClient) -> None:
    def marks(path: str) -> dict[str, str]:
        links = soup(site, path).select("header nav[aria-label=Site] a")
        return {link.text: link["aria-current"] for link in links if link.has_attr("aria-current")}

    assert marks("/tag/otters/") == {"Tags": "true"}
    assert marks("/tags/") == {"Tags": "page"}
    assert marks("/category/notes/") == {"Categories": "true"}
    assert marks("/archive/2024/") == {"Archive": "true"}
    assert marks("/projects/quire/") == {"Projects": "true"}  # below a page of the menu: not Home's, though under /
    assert marks("/projects/") == {"Projects": "page"}
    assert marks("/posts/hello/") == {}


def test_pages_are_in_the_sitemap_and_search(site: FlaskClient) -> None:
    sitemap = BeautifulSoup(site.get("/sitemap.xml").data, "xml")
    locations = [loc.text for loc in sitemap.find_all("loc")]
    for path in ("/about/", "/projects/", "/colophon/", "/somewhere/else/"):
        assert "https://blog.example.com" + path in locations
    results = soup(site, "/search?q=otters")
    assert sorted(link.text for link in results.select(".search-hit h2 a")) == ["About us", "Colophon", "Hello", "Second"]
    hit = next(hit for hit in results.select(".search-hit") if hit.h2.text == "Colophon")
    assert hit.select(".post-meta") == []


@pytest.mark.parametrize("path", ["/", "/archive/", "/tags/", "/tag/otters/", "/categories/", "/posts/hello/"])
def test_pages_are_never_listed_with_posts(site: FlaskClient, path: str) -> None:
    body = soup(site, path).find("main")
    assert not {"About us", "Colophon", "Projects", "Moved page"} & {link.text for link in body.find_all("a")}


def test_pages_are_never_in_feeds(site: FlaskClient) -> None:
    for path in ("/feed.xml", "/rss.xml"):
        assert [entry.title for entry in feedparser.parse(site.get(path).data).entries] == ["Second", "Hello"]
    assert [item["title"] for item in json.loads(site.get("/feed.json").data)["items"]] == ["Second", "Hello"]


def test_a_page_and_a_post_claiming_one_url_is_a_duplicate_url_problem(make_app: AppFactory, write_post: WritePost,
                                                                        write_page: WritePost) -> None:
    write_post("2024-01-01-about.md", "The post.", title="A post called about", permalink="/about/")
    write_page("about.md", "The page.", title="About", nav=1)
    app = make_app()
    client = app.test_client()
    assert soup(client, "/about/").find("h1").text == "A post called about"  # the post keeps its URL
    assert ("About", "/about/", True) not in menu(client, "/about/")
    result = app.test_cli_runner().invoke(args=["blog", "check", "--format", "json"])
    problems = {(problem["file"], problem["severity"], problem["code"]) for problem in json.loads(result.output)["problems"]}
    assert ("pages/about.md", "error", "duplicate-url") in problems
    assert ("2024-01-01-about.md", "warning", "duplicate-url") in problems
    assert result.exit_code == 1


def test_check_reads_pages_for_broken_links_and_bad_front_matter(make_app: AppFactory, write_page: WritePost) -> None:
    write_page("about.md", "See [the projects](/projects/) and [nothing](/no-such-page/).", title="About")
    write_page("projects.md", "Things.", nav="first")
    write_page("broken.md", raw="---\ntitle: [unclosed\n---\nText.\n")
    result = make_app().test_cli_runner().invoke(args=["blog", "check", "--format", "json"])
    problems = json.loads(result.output)["problems"]
    found = {(problem["file"], problem["code"], problem["line"]) for problem in problems}
    assert ("pages/about.md", "broken-link", 5) in found
    assert ("pages/projects.md", "invalid-nav", 2) in found
    assert any(file == "pages/broken.md" and code == "unreadable" for file, code, _ in found)
    assert not any("/projects/" in problem["message"] for problem in problems)  # a page is a link target


def test_drafts_and_underscore_folders_of_pages_are_not_served(make_app: AppFactory, write_page: WritePost) -> None:
    write_page("secret.md", "Not yet.", title="Secret", published=False, nav=1)
    write_page("_layouts/default.md", "A Jekyll layout, no page.")
    write_page("_notes.md", "Ignored, as posts are.")
    client = make_app().test_client()
    assert client.get("/secret/").status_code == 404
    assert client.get("/_layouts/default/").status_code == 404
    assert "Secret" not in [title for title, *_ in menu(client)]


def test_pages_render_liquid_and_markdown_as_posts_do(make_app: AppFactory, write_post: WritePost,
                                                      write_page: WritePost) -> None:
    write_post("2024-01-01-hello.md", "Hi.", title="Hello")
    write_page("about.md", "Read [my first post]({% post_url 2024-01-01-hello %}) on {{ site.title }}.\n\n"
                           "```python\nprint('hi')\n```\n", title="About")
    page = soup(make_app(BLOG_TITLE="Otter Notes").test_client(), "/about/")
    assert page.select_one(".post-body a[href='/posts/hello/']").text == "my first post"
    assert "on Otter Notes." in page.text
    assert page.select_one(".post-body .highlight") is not None


def test_a_jekyll_site_root_keeps_its_page_urls(tmp_path: Path, make_app: AppFactory) -> None:
    from blog.content.pages import PostPages
    from blog.content.store import PostStore

    root = tmp_path / "jekyll"
    (root / "_posts").mkdir(parents=True)
    (root / "_posts" / "2020-01-01-post.md").write_text("---\ntitle: Post\n---\nA post.\n", encoding="utf-8")
    (root / "about.md").write_text("---\ntitle: About\n---\nThe page.\n", encoding="utf-8")
    (root / "docs").mkdir()
    (root / "docs" / "index.md").write_text("---\ntitle: Docs\n---\nDocs.\n", encoding="utf-8")
    (root / "README.md").write_text("No front matter: Jekyll copies it as a file, it is no page.\n", encoding="utf-8")
    app = make_app(BLOG_PAGES_DIR=str(root))
    pages = PostPages(app, name="jekyll")
    app.config.update(FLATPAGES_JEKYLL_ROOT=str(root), FLATPAGES_JEKYLL_EXTENSION=(".md", ".html"))
    pages.skips_underscore_folders = True
    store = PostStore(pages, app.config, static_root="", kind="page", jekyll_pages=True)
    store.load()
    assert sorted(store.snapshot.by_url) == ["/about.html", "/docs/"]


def test_a_new_or_edited_page_is_live(make_app: AppFactory, write_page: WritePost, pages_dir: Path) -> None:
    pages_dir.mkdir()
    app = make_app(BLOG_WATCH="poll", BLOG_POLL_INTERVAL_MS="50")
    client = app.test_client()
    assert client.get("/now/").status_code == 404
    write_page("now.md", "Reading about otters.", title="Now", nav=1)
    eventually(lambda: client.get("/now/").status_code == 200)
    assert ("Now", "/now/", False) in menu(client)
    write_page("now.md", "Reading about beavers.", title="Now", nav=1)
    eventually(lambda: "beavers" in client.get("/now/").get_data(as_text=True))
    eventually(lambda: [link.text for link in soup(client, "/search?q=beavers").select(".search-hit h2 a")] == ["Now"])
    (pages_dir / "now.md").unlink()
    eventually(lambda: client.get("/now/").status_code == 404)
    assert "Now" not in [title for title, *_ in menu(client)]


def test_the_shipped_about_page_is_served_from_the_checkout(make_app: AppFactory) -> None:
    from blog import config

    client = make_app(BLOG_PAGES_DIR=str(config.PROJECT_ROOT / "pages")).test_client()
    assert soup(client, "/about/").find("h1").text == "About"
    assert ("About", "/about/", False) in menu(client)
