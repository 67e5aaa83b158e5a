"""Author preview: drafts and future posts at their URL with ?preview=<token>, marked, noindex, never cached."""

from __future__ import annotations

import datetime as dt

import pytest
from bs4 import BeautifulSoup
from flask import Flask

from tests.conftest import AppFactory, WritePost

TOKEN = "preview-token-0123456789"
FUTURE = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)).replace(microsecond=0)


@pytest.fixture
def site(make_app: AppFactory, write_post: WritePost) -> Flask:
    write_post("2020-01-01-public.md", "Public text.", title="Public")
    write_post("2020-01-02-draft.md", "Draft text.", title="Half done", published=False)
    write_post("scheduled.md", "Future text.", title="Scheduled", date=FUTURE.isoformat())
    return make_app(BLOG_PREVIEW_TOKEN=TOKEN)


@pytest.mark.parametrize(("path", "title"), [("/posts/draft/", "Half done"), ("/posts/scheduled/", "Scheduled")])
def test_token_shows_hidden_posts_marked_draft_and_noindex(site: Flask, path: str, title: str) -> None:
    response = site.test_client().get(f"{path}?preview={TOKEN}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["X-Robots-Tag"] == "noindex"
    assert response.headers["Referrer-Policy"] == "no-referrer"  # the token stays out of every Referer
    assert "ETag" in response.headers and "Last-Modified" not in response.headers
    page = BeautifulSoup(response.data, "html.parser")
    assert page.find("h1").get_text(strip=True) == title
    assert page.select_one(".preview-notice strong").get_text() == "Draft"
    assert page.find("meta", attrs={"name": "robots"})["content"] == "noindex"
    assert page.select(".post-nav a") == [] and page.select(".related") == []


@pytest.mark.parametrize("query", ["", "?preview=", "?preview=wrong", f"?preview={TOKEN}x", f"?preview={TOKEN[:-1]}",
                                   f"?Preview={TOKEN}"])
def test_missing_or_wrong_token_is_a_plain_404(site: Flask, query: str) -> None:
    client = site.test_client()
    response = client.get(f"/posts/draft/{query}")
    absent = client.get(f"/posts/never-written/{query}")
    assert response.status_code == absent.status_code == 404
    assert response.data.replace(b"/posts/draft/", b"/x/") == absent.data.replace(b"/posts/never-written/", b"/x/")
    assert response.headers["Cache-Control"] == absent.headers["Cache-Control"]


def test_no_token_configured_means_no_preview(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-02-draft.md", title="Half done", published=False)
    client = make_app().test_client()
    assert client.get("/posts/draft/?preview=").status_code == 404
    assert client.get("/posts/draft/?preview=anything-at-all-here").status_code == 404


def test_previews_are_never_listed_nor_kept_in_the_response_cache(site: Flask) -> None:
    client = site.test_client()
    assert client.get(f"/posts/draft/?preview={TOKEN}").status_code == 200
    cache = site.extensions["quire.cache"]
    assert all(key[0] != "/posts/draft/" for key in cache._entries)
    assert client.get("/posts/draft/").status_code == 404  # the preview did not leak to token-less readers
    for path in ["/", "/feed.xml", "/feed.json", "/sitemap.xml", "/archive/", "/archive/2020/"]:
        body = client.get(path).get_data(as_text=True)
        assert "Half done" not in body and "/posts/draft/" not in body and "Scheduled" not in body, path


def test_public_posts_ignore_the_token(site: Flask) -> None:
    response = site.test_client().get(f"/posts/public/?preview={TOKEN}")
    assert response.status_code == 200
    assert BeautifulSoup(response.data, "html.parser").select(".preview-notice") == []


@pytest.mark.parametrize("value", ["short", "has spaces in the middle of it", "ünïcode-ünïcode-ünïcode"])
def test_weak_or_unsafe_tokens_are_refused(make_app: AppFactory, value: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        make_app(BLOG_PREVIEW_TOKEN=value)
    assert "BLOG_PREVIEW_TOKEN must be empty (previews off) or at least 16 URL-safe characters" in str(stopped.value)
