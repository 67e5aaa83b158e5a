"""The author's preview server: drafts shown and marked, problems in the page, reload events, no caching."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bs4 import BeautifulSoup
from flask import Flask

from blog import dev
from blog.config import PROJECT_ROOT
from tests.conftest import AppFactory, WritePost

FUTURE = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)).replace(microsecond=0)


@pytest.fixture
def posts(write_post: WritePost) -> WritePost:
    write_post("2020-01-01-public.md", "Public text.", title="Public")
    write_post("2020-01-02-draft.md", "Draft text.", title="Half done", published=False)
    write_post("scheduled.md", "Future text.", title="Later", date=FUTURE.isoformat())
    return write_post


def soup(app: Flask, path: str) -> BeautifulSoup:
    response = app.test_client().get(path)
    assert response.status_code == 200, path
    return BeautifulSoup(response.data, "html.parser")


def test_production_has_no_reload_script_no_event_stream_and_no_drafts(make_app: AppFactory, posts: WritePost) -> None:
    app = make_app()
    client = app.test_client()
    for path in ("/", "/posts/public/", "/no-such-page/"):
        page = BeautifulSoup(client.get(path).data, "html.parser")
        assert page.find_all("script", src=True) != []
        assert not any("dev-reload" in script["src"] for script in page.find_all("script", src=True)), path
        assert page.select(".dev-problems, .post-status") == []
    assert client.get("/_quire/events").status_code == 404
    assert client.get("/posts/draft/").status_code == client.get("/posts/scheduled/").status_code == 404
    assert client.get("/").headers["Cache-Control"].startswith("public")


def test_dev_mode_lists_drafts_and_future_posts_marked(make_app: AppFactory, posts: WritePost) -> None:
    app = make_app(BLOG_DEV=True)
    index = soup(app, "/")
    marks = {card.select_one(".card-title").get_text(strip=True): card.select_one(".post-status")
             for card in index.select(".card")}
    assert {title: mark.get_text() if mark else None for title, mark in marks.items()} == {
        "Later": "Scheduled", "Half done": "Draft", "Public": None}
    assert soup(app, "/posts/draft/").select_one(".post-status").get_text() == "Draft"
    assert soup(app, "/posts/scheduled/").select_one(".post-status").get_text() == "Scheduled"


def test_dev_pages_carry_the_reload_script_and_nothing_is_cached(make_app: AppFactory, posts: WritePost) -> None:
    app = make_app(BLOG_DEV=True)
    client = app.test_client()
    for path in ("/", "/posts/public/", "/no-such-page/", "/archive/"):
        response = client.get(path)
        page = BeautifulSoup(response.data, "html.parser")
        script = page.select_one('script[src^="/static/js/dev-reload.js"]')
        assert script is not None and script.has_attr("defer"), path
        assert script["data-events"].startswith("/_quire/events?since=")
        assert page.body.find_all(recursive=False)[-1] is script  # just before </body>
        assert response.headers["Cache-Control"] == "no-store" and "ETag" not in response.headers
    with client.get("/static/css/site.css?v=whatever") as static:
        assert static.status_code == 200 and static.headers["Cache-Control"] == "no-store"
        assert b"dev-reload" not in static.data
    assert client.get("/feed.xml").headers["Cache-Control"] == "no-store"
    assert b"dev-reload" not in client.get("/feed.xml").data
    assert "quire.cache" not in app.extensions  # no response cache in front of the app
    with client.get("/static/js/dev-reload.js") as script:
        assert script.status_code == 200 and b"EventSource" in script.data


def _events(app: Flask, since: str) -> object:
    response = app.test_client().get(f"/_quire/events?since={since}", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream" and response.headers["Cache-Control"] == "no-store"
    return response


def test_a_page_older_than_the_site_gets_a_reload_event_at_once(make_app: AppFactory, posts: WritePost) -> None:
    app = make_app(BLOG_DEV=True)
    response = _events(app, "a-version-from-before")
    chunks = iter(response.response)  # type: ignore[attr-defined]
    assert next(chunks).decode() == "retry: 500\n\n"
    assert next(chunks).decode() == f"event: reload\ndata: {dev.version(app)}\n\n"
    response.close()  # type: ignore[attr-defined]


def test_an_edit_sends_the_open_page_a_reload_event(make_app: AppFactory, posts: WritePost) -> None:
    app = make_app(BLOG_DEV=True, BLOG_WATCH="inotify")
    page = soup(app, "/posts/public/")  # starts the watcher
    since = page.select_one("script[data-events]")["data-events"].split("since=")[1]
    assert since == dev.version(app)
    response = _events(app, since)
    chunks = iter(response.response)  # type: ignore[attr-defined]
    assert next(chunks).decode() == "retry: 500\n\n"
    posts("2020-01-01-public.md", "Edited text.", title="Public")
    assert next(chunks).decode().startswith("event: reload\n")
    response.close()  # type: ignore[attr-defined]
    assert "Edited text." in soup(app, "/posts/public/").select_one(".post-body").get_text()


def test_dev_mode_shows_a_broken_posts_problem_instead_of_its_last_good_version(make_app: AppFactory,
                                                                               posts: WritePost) -> None:
    dev_app, production = make_app(BLOG_DEV=True), make_app()
    assert "Public text." in soup(dev_app, "/posts/public/").get_text()
    path = posts("2020-01-01-public.md", raw="---\ntitle: Public\ntags: [unclosed\n---\n\nBroken text.\n")
    for app in (dev_app, production):
        app.extensions["quire"].refresh(None)
    assert "Public text." in soup(production, "/posts/public/").select_one(".post-body").get_text()
    page = soup(dev_app, "/posts/public/")
    assert "Public text." not in page.get_text()
    problem = page.select_one(".dev-problem .dev-problems-list li")
    assert problem.code.get_text().startswith(f"{path}:4")
    assert "invalid front matter" in problem.get_text()
    panel = soup(dev_app, "/").select_one("main > .dev-problems")  # every page lists what is wrong
    assert f"{path}:4" in panel.get_text()


def test_template_and_stylesheet_changes_are_picked_up(make_app: AppFactory, posts: WritePost,
                                                       tmp_path: Path) -> None:
    templates, static = tmp_path / "templates", tmp_path / "static"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    shutil.copytree(PROJECT_ROOT / "static", static, ignore=shutil.ignore_patterns("assets"))
    app = make_app(BLOG_DEV=True)
    app.template_folder, app.static_folder = str(templates), str(static)
    app.__dict__.pop("jinja_loader", None)  # Flask caches the loader made from template_folder
    before, stylesheet = dev.version(app), soup(app, "/").find("link", rel="stylesheet")["href"]
    post_html = templates / "post.html"
    post_html.write_text(post_html.read_text().replace('<article class="post">', '<article class="post edited">'))
    os.utime(post_html, ns=(1, 1))  # a different mtime even on a coarse clock
    assert dev.version(app) != before
    assert soup(app, "/posts/public/").select_one("article.post.edited") is not None  # Jinja's auto_reload
    middle = dev.version(app)
    (static / "css" / "site.css").write_text("body { color: red; }\n")
    assert dev.version(app) != middle
    assert soup(app, "/").find("link", rel="stylesheet")["href"] != stylesheet  # the fingerprint follows


def test_blog_new_writes_a_draft_and_prints_where_to_preview_it(make_app: AppFactory, posts_dir: Path) -> None:
    app = make_app(BLOG_PREVIEW_TOKEN="s3cret-token-for-tests")
    result = app.test_cli_runner().invoke(args=["blog", "new", "Work in progress"])
    assert result.exit_code == 0, result.output
    path, public, local, shared = result.output.splitlines()
    assert yaml.safe_load(Path(path).read_text(encoding="utf-8").split("---\n")[1])["published"] is False
    assert public == "https://blog.example.com/posts/work-in-progress/ (a draft: delete the line " \
                     "'published: false' to publish it)"
    assert local == f"preview: {dev.address()}/posts/work-in-progress/ (while `make dev` runs)"
    assert shared == "preview: https://blog.example.com/posts/work-in-progress/?preview=s3cret-token-for-tests"
    assert app.test_client().get("/posts/work-in-progress/").status_code == 404
    assert app.test_client().get("/").data.count(b"Work in progress") == 0


def test_blog_new_publish_puts_the_post_on_the_site(make_app: AppFactory) -> None:
    app = make_app()
    result = app.test_cli_runner().invoke(args=["blog", "new", "Right away", "--publish"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1] == "https://blog.example.com/posts/right-away/"
    assert app.test_client().get("/posts/right-away/").status_code == 200


def test_gunicorn_refuses_dev_mode(posts_dir: Path) -> None:
    env = {**os.environ, "BLOG_POSTS_DIR": str(posts_dir), "BLOG_DEV": "1"}
    result = subprocess.run([str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py",
                             "--check-config", "wsgi:app"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "BLOG_DEV is for the preview server (make dev), never for gunicorn" in result.stderr
