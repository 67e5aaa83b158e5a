"""Reader pages: index and pagination, posts, categories, tags, authors, assets and the 404 page."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask.testing import FlaskClient

from tests.conftest import SEED, AppFactory, WritePost


def soup(response) -> BeautifulSoup:  # type: ignore[no-untyped-def]
    return BeautifulSoup(response.data, "html.parser")


@pytest.fixture
def blog(make_app: AppFactory, write_post: WritePost) -> FlaskClient:
    for day in range(1, 13):
        write_post(f"2020-01-{day:02d}-post-{day}.md", f"Body of post {day}.\n\nMore text.",
                   title=f"Post {day}", categories=["Even" if day % 2 == 0 else "Odd Ones"],
                   tags=["all"], author="Jane Doe")
    return make_app(BLOG_PER_PAGE="5").test_client()


def titles(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [link.text for link in soup(response).select(".card-title a")]


def test_index_lists_newest_first_and_paginates(blog: FlaskClient) -> None:
    first = blog.get("/")
    assert first.status_code == 200
    assert titles(first) == [f"Post {day}" for day in range(12, 7, -1)]
    page = soup(first)
    assert page.select_one('.pagination a[rel="next"]')["href"] == "/page/2/"
    assert page.select_one('.pagination a[rel="prev"]') is None
    second = soup(blog.get("/page/2/"))
    assert second.select_one('.pagination a[rel="prev"]')["href"] == "/"
    assert titles(blog.get("/page/3/")) == ["Post 2", "Post 1"]


def test_listing_shows_date_author_categories_and_excerpt(blog: FlaskClient) -> None:
    card = soup(blog.get("/")).select_one(".card")
    assert card.select_one("time")["datetime"] == "2020-01-12T00:00:00+00:00"
    assert card.select_one('a[rel="author"]')["href"] == "/author/jane-doe/"
    assert card.select_one("a.category")["href"] == "/category/even/"
    assert card.select_one(".card-excerpt").text.strip() == "Body of post 12."


@pytest.mark.parametrize(("path", "status"), [("/page/1/", 301), ("/page/4/", 404), ("/page/0/", 404),
                                              ("/page/99999999999999999999/", 404), ("/page/x/", 404)])
def test_pagination_bounds(blog: FlaskClient, path: str, status: int) -> None:
    response = blog.get(path)
    assert response.status_code == status
    if status == 301:
        assert response.headers["Location"] == "/"


def test_post_page(blog: FlaskClient) -> None:
    response = blog.get("/posts/post-5/")
    assert response.status_code == 200
    page = soup(response)
    assert page.select_one("h1").text == "Post 5"
    assert len(page.select("h1")) == 1
    assert page.select_one("article time")["datetime"] == "2020-01-05T00:00:00+00:00"
    assert page.select_one('nav.post-nav a[rel="prev"]')["href"] == "/posts/post-4/"
    assert page.select_one('nav.post-nav a[rel="next"]')["href"] == "/posts/post-6/"
    assert "Body of post 5." in page.select_one(".post-body").text


def test_missing_trailing_slash_redirects(blog: FlaskClient) -> None:
    response = blog.get("/posts/post-5")
    assert (response.status_code, response.headers["Location"]) == (308, "/posts/post-5/")


def test_category_pages(blog: FlaskClient) -> None:
    listing = soup(blog.get("/categories/"))
    rows = {link.text: link.find_next_sibling("span").text for link in listing.select(".terms a")}
    assert rows == {"Even": "6", "Odd Ones": "6"}
    assert listing.select_one(".terms a")["href"] == "/category/even/"
    odd = blog.get("/category/odd-ones/")
    assert soup(odd).select_one("h1").text.strip().endswith("Odd Ones")
    assert titles(odd) == ["Post 11", "Post 9", "Post 7", "Post 5", "Post 3"]
    assert titles(blog.get("/category/odd-ones/page/2/")) == ["Post 1"]
    assert blog.get("/category/odd-ones/page/1/").status_code == 301
    assert blog.get("/category/odd-ones/page/3/").status_code == 404


@pytest.mark.parametrize("path", ["/tag/all/", "/author/jane-doe/", "/tags/"])
def test_tag_and_author_pages(blog: FlaskClient, path: str) -> None:
    assert blog.get(path).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/nope", "/posts/nope/", "/category/none/", "/tag/none/", "/author/nobody/",
        "/posts/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/posts/%2e%2e%2fsecret",
        "/static/..%2f..%2fblog/config.py", "/static/../blog/config.py", "/assets/..%2f..%2fwsgi.py",
        "/assets/%2e%2e/%2e%2e/wsgi.py", "/static/%5c..%5cwsgi.py", "/posts\\..\\wsgi.py",
        "//etc/passwd", "/static//etc/passwd", "/assets/%00", "/posts/%00/", "/category/%2e%2e/",
    ],
)
def test_unknown_and_traversal_urls_are_404_pages(blog: FlaskClient, path: str) -> None:
    response = blog.get(path)
    assert response.status_code == 404
    page = soup(response)
    assert page.select_one("h1").text == "Page not found"
    assert page.select_one("header.site-header") is not None
    assert b"Traceback" not in response.data and b"import" not in response.data


def test_seed_post_keeps_raw_html_and_encodes_cover(make_app: AppFactory, posts_dir: Path, tmp_path: Path) -> None:
    shutil.copy(SEED, posts_dir / "2023-11-20-binance-hkvaex.md")
    app = make_app()
    cover = Path(app.static_folder) / "assets" / "cover" / "Binance HKVAEX.jpg"
    client = app.test_client()
    page = soup(client.get("/posts/binance-hkvaex/"))
    assert page.select_one("h1").text.startswith("Binance Covertly Backs HKVAEX")
    assert page.select_one(".post-body .center img")["src"].startswith("https://substackcdn.com/")
    assert [link.text for link in page.select("a.category")] == ["policy"]
    assert page.select_one('a[rel="author"]').text == "Quedic"
    if cover.exists():
        assert page.select_one(".post-cover img")["src"] == "/assets/cover/Binance%20HKVAEX.jpg"
        assert client.get("/assets/cover/Binance%20HKVAEX.jpg").status_code == 200
    else:  # a missing cover is not drawn as a broken image
        assert page.select_one(".post-cover") is None


def test_missing_cover_is_not_drawn_and_reported(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-a.md", title="A", cover="/assets/nope.jpg")
    app = make_app()
    assert soup(app.test_client().get("/posts/a/")).select_one(".post-cover") is None
    assert [problem.code for problem in app.extensions["quire"].problems()] == ["missing-cover"]


def test_present_cover_is_drawn_with_encoded_url(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-a.md", title="A", cover="https://images.example.com/a b.jpg")
    page = soup(make_app().test_client().get("/"))
    img = page.select_one(".card img")
    assert img["alt"] == "A" and img["loading"] == "lazy"
    assert img["src"] == "https://images.example.com/a%20b.jpg"


def test_empty_site_has_a_friendly_index(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert "No posts yet" in soup(response).text


def test_static_files_are_served(client: FlaskClient) -> None:
    response = client.get("/static/css/pygments-light.css")
    assert response.status_code == 200 and b".highlight" in response.data
