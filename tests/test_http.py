"""HTTP done right: validators and 304s, HEAD, gzip once per content version, and Cache-Control."""

from __future__ import annotations

import gzip
import re

import pytest
from bs4 import BeautifulSoup
from flask.testing import FlaskClient

from tests.conftest import AppFactory, WritePost

PAGES = ["/", "/posts/hello/", "/category/news/", "/categories/"]


@pytest.fixture
def site(make_app: AppFactory, write_post: WritePost) -> FlaskClient:
    write_post("2020-01-01-hello.md", "Hello there. " * 200, title="Hello", categories=["News"])
    return make_app(BLOG_CACHE_SECONDS="120").test_client()


@pytest.mark.parametrize("path", PAGES)
def test_pages_carry_validators_and_answer_304(site: FlaskClient, path: str) -> None:
    first = site.get(path)
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{24}"', etag)  # strong
    assert first.headers["Last-Modified"].endswith("GMT")
    assert first.headers["Cache-Control"] == "public, max-age=120, s-maxage=1, stale-while-revalidate=1200"
    assert "X-Quire-Cache" not in first.headers
    again = site.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    since = site.get(path, headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert since.status_code == 304
    stale = site.get(path, headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200 and stale.data == first.data


@pytest.mark.parametrize("path", PAGES)
def test_head_has_headers_and_no_body(site: FlaskClient, path: str) -> None:
    get = site.get(path)
    head = site.head(path)
    assert head.status_code == 200 and head.data == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"]
    assert head.headers["ETag"] == get.headers["ETag"]


def test_gzip_when_accepted(site: FlaskClient) -> None:
    plain = site.get("/posts/hello/")
    packed = site.get("/posts/hello/", headers={"Accept-Encoding": "br, gzip;q=0.8"})
    assert packed.headers["Content-Encoding"] == "gzip"
    assert packed.headers["Vary"] == "Accept-Encoding" == plain.headers["Vary"]
    assert gzip.decompress(packed.data) == plain.data
    assert int(packed.headers["Content-Length"]) < int(plain.headers["Content-Length"]) / 3
    assert packed.headers["ETag"] != plain.headers["ETag"]
    refused = site.get("/posts/hello/", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers
    again = site.get("/posts/hello/", headers={"Accept-Encoding": "gzip", "If-None-Match": packed.headers["ETag"]})
    assert again.status_code == 304


def test_content_change_invalidates_cached_responses(make_app: AppFactory, write_post: WritePost) -> None:
    path = write_post("2020-01-01-hello.md", "First.", title="Hello")
    app = make_app()
    client = app.test_client()
    first = client.get("/posts/hello/")
    path.write_text("---\ntitle: Hello\n---\nSecond.\n", encoding="utf-8")
    app.extensions["quire"].refresh()
    second = client.get("/posts/hello/", headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200 and b"Second." in second.data


def test_cached_responses_are_reused_without_rendering(site: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    site.get("/posts/hello/")
    import blog.views

    monkeypatch.setattr(blog.views, "render_template", lambda *args, **kwargs: pytest.fail("rendered again"))
    assert site.get("/posts/hello/").status_code == 200


def test_errors_are_not_cached_as_content(site: FlaskClient) -> None:
    response = site.get("/nope/")
    assert response.status_code == 404
    assert "no-store" not in response.headers["Cache-Control"]
    assert BeautifulSoup(response.data, "html.parser").select_one("h1").text == "Page not found"


def test_fingerprinted_assets_are_immutable(site: FlaskClient) -> None:
    page = BeautifulSoup(site.get("/").data, "html.parser")
    href = page.select_one('link[rel="stylesheet"]')["href"]
    assert "?v=" in href
    response = site.get(href)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert site.get(href, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304


def test_cache_can_be_turned_off(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-hello.md", title="Hello")
    client = make_app(BLOG_RESPONSE_CACHE_ENTRIES="0", BLOG_CACHE_SECONDS="0").test_client()
    response = client.get("/posts/hello/")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-cache"
    assert client.get("/posts/hello/", headers={"If-None-Match": response.headers["ETag"]}).status_code == 304


def test_a_response_too_large_to_keep_is_produced_once_per_request(make_app: AppFactory) -> None:
    cache = make_app().extensions["quire.cache"]
    calls: list[str] = []

    def big(environ: dict, start_response):  # type: ignore[no-untyped-def]
        calls.append(environ["REQUEST_METHOD"])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"x" * (1024 * 1024)] * 3

    cache.app = big
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/static/big.bin", "QUERY_STRING": "", "wsgi.url_scheme": "http"}
    for _ in range(3):
        assert sum(map(len, cache(dict(environ), lambda *args: None))) == 3 * 1024 * 1024
    assert len(calls) == 4  # the first request finds out it is too large to keep; the others go straight through


def test_responses_too_large_to_keep_hold_bounded_memory_and_no_internal_header(make_app: AppFactory) -> None:
    from blog.http import CACHE_MARKER, MAX_TOO_LARGE_KEYS

    app = make_app()
    cache = app.extensions["quire.cache"]

    def big(environ: dict, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "application/octet-stream"), (CACHE_MARKER, "static")])
        return [b"x" * (3 * 1024 * 1024)]

    cache.app = big
    sent: list[list[tuple[str, str]]] = []
    for number in range(MAX_TOO_LARGE_KEYS + 500):  # distinct query strings on one large asset
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/static/big.bin", "QUERY_STRING": f"n={number}",
                   "wsgi.url_scheme": "http"}
        list(cache(environ, lambda status, headers, exc_info=None: sent.append(headers)))
    assert len(cache._too_large) <= MAX_TOO_LARGE_KEYS
    assert not [name for headers in sent for name, _ in headers if name.lower() == CACHE_MARKER.lower()]


@pytest.mark.parametrize("path", ["/posts/hello/", "/?" + "a" * 40_000, "/static/css/site.css"])
def test_no_response_carries_the_internal_cache_marker(make_app: AppFactory, write_post: WritePost, path: str) -> None:
    write_post("2020-01-01-hello.md", "Hello there.", title="Hello")
    for entries in ("4096", "0"):
        response = make_app(BLOG_RESPONSE_CACHE_ENTRIES=entries).test_client().get(path)
        assert "X-Quire-Cache" not in response.headers, (path, entries)
