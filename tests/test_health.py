"""Operations: /healthz, and X-Forwarded-* honoured only for the number of proxies BLOG_TRUSTED_PROXIES trusts."""

from __future__ import annotations

import pytest
from flask import Flask, request

from tests.conftest import AppFactory, WritePost


def test_healthz_reports_posts_problems_age_and_generation(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-one.md", title="One")
    write_post("2020-01-02-two.md", title="Two", layout="fancy")
    write_post("2020-01-03-bad.md", raw="---\ndate: [oops\n---\n")
    app = make_app()
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"status", "posts", "problems", "content_age_seconds", "generation"}
    assert body["status"] == "ok" and body["posts"] == 2
    assert body["problems"] == {"errors": 1, "warnings": 1}
    assert 0 <= body["content_age_seconds"] < 60
    assert body["generation"] == app.extensions["quire"].snapshot.generation


def test_healthz_follows_new_content(make_app: AppFactory, write_post: WritePost) -> None:
    app = make_app()
    client = app.test_client()
    before = client.get("/healthz").get_json()
    write_post("2020-01-01-one.md", title="One")
    app.extensions["quire"].refresh()
    after = client.get("/healthz").get_json()
    assert (before["posts"], after["posts"]) == (0, 1)
    assert after["generation"] > before["generation"]


def _echo(app: Flask) -> Flask:
    def echo() -> dict[str, str]:
        return {"addr": request.remote_addr or "", "scheme": request.scheme, "host": request.host}

    app.add_url_rule("/_echo", "echo", echo)
    return app


FORWARDED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "blog.example.com"}


@pytest.mark.parametrize(
    ("proxies", "expected"),
    [
        (None, {"addr": "127.0.0.1", "scheme": "http", "host": "localhost"}),
        ("0", {"addr": "127.0.0.1", "scheme": "http", "host": "localhost"}),
        ("1", {"addr": "203.0.113.7", "scheme": "https", "host": "blog.example.com"}),
    ],
)
def test_forwarded_headers_only_from_trusted_proxies(make_app: AppFactory, proxies: str | None,
                                                     expected: dict[str, str]) -> None:
    app = _echo(make_app(**({"BLOG_TRUSTED_PROXIES": proxies} if proxies else {})))
    response = app.test_client().get("/_echo", headers=FORWARDED)
    assert response.get_json() == expected


def test_two_trusted_proxies_take_the_second_address_from_the_right(make_app: AppFactory) -> None:
    app = _echo(make_app(BLOG_TRUSTED_PROXIES="2"))
    headers = {**FORWARDED, "X-Forwarded-For": "198.51.100.1, 203.0.113.7, 10.0.0.2",
               "X-Forwarded-Proto": "https,http", "X-Forwarded-Host": "blog.example.com,internal"}
    assert app.test_client().get("/_echo", headers=headers).get_json() == {
        "addr": "203.0.113.7", "scheme": "https", "host": "blog.example.com"}


def test_healthz_reads_no_file_and_renders_nothing(make_app: AppFactory, write_post: WritePost,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for number in range(20):
        write_post(f"2020-01-01-post-{number}.md", title=f"Post {number}")
    app = make_app()
    store = app.extensions["quire"]

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("/healthz touched the posts")

    for name in ("walk", "read", "render_text"):
        monkeypatch.setattr(store.pages, name, forbidden)
    monkeypatch.setattr(store, "render_body", forbidden)
    client = app.test_client()
    assert [client.get("/healthz").get_json()["posts"] for _ in range(3)] == [20, 20, 20]
