"""Hostile requests: traversal in every spelling, symlinks out of static/, oversized and non-UTF-8 requests,
unknown methods, and the security headers every response carries."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient

from blog import create_app
from blog.security import CONTENT_SECURITY_POLICY, MAX_HEADER_BYTES, MAX_QUERY_BYTES
from tests.conftest import AppFactory, WritePost

SECRET = "QUIRE-SECRET-OUTSIDE-STATIC"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """Return an app with one post, a static/ folder of its own and a secret file beside it (one per module)."""
    base = tmp_path_factory.mktemp("site")
    posts = base / "posts"
    posts.mkdir()
    (posts / "2020-01-01-hello.md").write_text(
        "---\ntitle: Hello\ncategories: [News]\ntags: [t]\nauthor: Ann\n---\nHello there.\n")
    static = base / "static"
    (static / "assets").mkdir(parents=True)
    (static / "css").mkdir()
    (static / "css" / "site.css").write_text("body{}")
    (static / "assets" / "pic.txt").write_text("inside")
    (base / "secret.txt").write_text(SECRET)
    (static / "assets" / "escape.txt").symlink_to(base / "secret.txt")
    (static / "assets" / "escape-dir").symlink_to(base, target_is_directory=True)
    (static / "assets" / "inside.txt").symlink_to(static / "css" / "site.css")
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("BLOG_")]:
            patch.delenv(name)
        app = create_app({"BLOG_POSTS_DIR": str(posts), "BLOG_WATCH": "off", "BLOG_URL": "https://blog.example.com",
                          "BLOG_CACHE_DIR": "off"})
    app.config["TESTING"] = True
    app.static_folder = str(static)
    yield app
    app.extensions["quire.watcher"].stop()


@pytest.fixture
def client(site: Flask) -> FlaskClient:
    return site.test_client()


TRAVERSALS = [
    "../secret.txt", "../../secret.txt", "..%2fsecret.txt", "..%2F..%2Fsecret.txt", "%2e%2e/secret.txt",
    "%2e%2e%2fsecret.txt", "%252e%252e%252fsecret.txt", "..%5csecret.txt", "..\\secret.txt",
    "%c0%ae%c0%ae/secret.txt", "%c0%ae%c0%ae%c0%afsecret.txt", "secret.txt%00.css", "%00", "/etc/passwd",
    "%2fetc%2fpasswd", "//etc/passwd", "C:/Windows/win.ini", "C:%5cWindows%5cwin.ini", "c:secret.txt",
    "....//secret.txt", ".%2e/secret.txt", "escape.txt", "escape-dir/secret.txt", "./../secret.txt",
]
PREFIXES = ["/static/", "/static/css/", "/assets/", "/", "/posts/", "/category/", "/tag/", "/author/",
            "/category/news/", "/tag/t/feed.xml/"]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("attack", TRAVERSALS)
def test_traversal_never_leaves_static_or_errors(client: FlaskClient, prefix: str, attack: str) -> None:
    response = client.get(prefix + attack)
    assert 300 <= response.status_code < 500, response.status_code
    assert SECRET.encode() not in response.data
    assert b"root:" not in response.data
    if response.status_code >= 400:
        assert response.mimetype == "text/html"
        assert BeautifulSoup(response.data, "html.parser").find("h1") is not None  # the site's error page


def test_symlinks_inside_static_are_still_served(client: FlaskClient) -> None:
    assert client.get("/assets/inside.txt").data == b"body{}"
    assert client.get("/assets/pic.txt").data == b"inside"
    assert client.get("/assets/escape.txt").status_code == 404


def test_symlinked_post_outside_posts_is_not_read(make_app: AppFactory, posts_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "2020-01-02-leak.md").write_text(f"---\ntitle: Leak\n---\n{SECRET}\n")
    (posts_dir / "2020-01-02-leak.md").symlink_to(outside / "2020-01-02-leak.md")
    (posts_dir / "linked").symlink_to(outside, target_is_directory=True)
    app = make_app()
    assert app.extensions["quire"].snapshot.posts == ()
    client = app.test_client()
    assert client.get("/posts/leak/").status_code == 404
    assert SECRET.encode() not in client.get("/").data


@pytest.mark.parametrize("path", ["/", "/posts/hello/", "/category/news/", "/missing/", "/feed.xml", "/feed.json",
                                  "/static/css/site.css", "/assets/pic.txt", "/search?q=hello", "/sitemap.xml"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_every_response_carries_security_headers(client: FlaskClient, path: str, method: str) -> None:
    for _ in range(2):  # the second answer comes from the response cache
        response = client.open(path, method=method)
        assert response.status_code in {200, 404}
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "camera=()" in response.headers["Permissions-Policy"]
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_csp_forbids_framing_and_inline_script() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["img-src"] == "* data:"


def test_no_hsts_over_plain_http(make_app: AppFactory) -> None:
    response = make_app(BLOG_URL="http://127.0.0.1:8000").test_client().get("/")
    assert "Strict-Transport-Security" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_unexpected_error_page_has_headers(make_app: AppFactory) -> None:
    app = make_app()

    @app.route("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.headers["X-Frame-Options"] == "DENY"


def test_templates_carry_no_inline_style_or_script() -> None:
    templates = Path(__file__).resolve().parent.parent / "templates"
    for path in templates.rglob("*.html"):
        soup = BeautifulSoup(path.read_text(), "html.parser")
        assert not soup.find_all(style=True), path
        assert not soup.find_all("style"), path
        for script in soup.find_all("script"):  # JSON-LD data blocks, which CSP does not run, or external files
            assert script.get("type") == "application/ld+json" or (script.get("src") and not script.string), path


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "TRACE", "CONNECT", "PROPFIND", "FOO"])
@pytest.mark.parametrize("path", ["/", "/posts/hello/", "/static/css/site.css", "/feed.xml", "/nowhere"])
def test_unknown_methods_get_405_with_allow(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 405
    allowed = {item.strip() for item in response.headers["Allow"].split(",")}
    assert {"GET", "HEAD", "OPTIONS"} <= allowed and method not in allowed
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ["/", "/posts/hello/", "/static/css/site.css"])
def test_options_answers_allow_without_body(client: FlaskClient, path: str) -> None:
    response = client.options(path)
    assert response.status_code == 200 and response.data == b""
    assert {"GET", "HEAD", "OPTIONS"} == {item.strip() for item in response.headers["Allow"].split(",")}


@pytest.mark.parametrize(("path", "status"), [
    ("/?q=" + "a" * (MAX_QUERY_BYTES + 1), 414),
    ("/search?q=" + "x" * 100_000, 414),
    ("/" + "a" * 5000, 414),
    ("/search?q=%ff%fe", 400),
    ("/search?q=%c0%ae", 400),
    ("/?" + "&".join(f"k{i}=v" for i in range(10_000)), 414),
])
def test_oversized_and_invalid_requests_are_refused(client: FlaskClient, path: str, status: int) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("headers", [
    {"X-Big": "a" * (MAX_HEADER_BYTES + 1)},
    {f"X-Many-{i}": "v" * 100 for i in range(200)},
])
def test_huge_headers_get_431(client: FlaskClient, headers: dict[str, str]) -> None:
    assert client.get("/", headers=headers).status_code == 431


@pytest.mark.parametrize("raw", ["/posts/\xff\xfe/", "/static/\xc0\xae\xc0\xae/secret.txt", "/\xed\xa0\x80"])
def test_raw_invalid_utf8_path_is_400(client: FlaskClient, raw: str) -> None:
    # A real server puts the undecoded bytes in PATH_INFO (as latin-1); the test client would re-encode them.
    response = client.get("/", environ_overrides={"PATH_INFO": raw})
    assert response.status_code == 400


def test_site_serves_after_hostile_requests(client: FlaskClient) -> None:
    for attack in TRAVERSALS:
        client.get("/static/" + attack)
    assert client.get("/posts/hello/").status_code == 200
    assert os.path.exists(client.application.static_folder or "")


RAW_REQUESTS = [
    b"GET /posts/\xff\xfe/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /static/..%2f..%2fwsgi.py HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /assets/%c0%ae%c0%ae/%c0%ae%c0%ae/wsgi.py HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /static/%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /search?q=%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /?" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % n for n in range(200)) + b"\r\n",
    b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET C:\\Windows\\win.ini HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /static/../../wsgi.py HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET \x00 HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.slow
def test_hostile_raw_requests_through_gunicorn(tmp_path: Path) -> None:
    import signal
    import socket
    import subprocess
    import sys
    import time

    from bench.faults import fetch, free_port

    (tmp_path / "posts").mkdir()
    port = free_port()
    env = {**os.environ, "BLOG_POSTS_DIR": str(tmp_path / "posts"), "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
    root = Path(__file__).resolve().parent.parent
    log = tmp_path / "log"
    with log.open("wb") as handle:
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=root,
                                  env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if fetch(port, "/healthz")[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        for raw in RAW_REQUESTS:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(raw)
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
                    if b"\r\n\r\n" in answer and b"Connection: close" not in answer:
                        break
            status = int(answer.split(b" ", 2)[1])
            assert 400 <= status < 500, (raw[:60], answer[:200])
            assert b"wsgi:app" not in answer and b"create_app" not in answer
        assert fetch(port, "/")[0] == 200
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    assert "Traceback" not in log.read_text(errors="replace")


def _links(response: Any) -> list[str]:
    soup = BeautifulSoup(response.get_data(as_text=True), "html.parser")
    return [tag.get("href") or tag.get("src") or tag.get("action") for tag in soup.find_all(["a", "link", "script", "form", "img"])]


@pytest.mark.parametrize("path", ["/posts/hello/", "/", "/categories/", "/nowhere/"])
def test_a_client_sent_script_name_changes_no_cached_page(make_app: AppFactory, write_post: WritePost,
                                                         path: str) -> None:
    write_post("2020-01-01-hello.md", "Hello there.", title="Hello", categories=["News"])
    client = make_app().test_client()
    poisoned = client.get(path, environ_overrides={"SCRIPT_NAME": "//evil.example"})
    assert not [link for link in _links(poisoned) if link and "evil" in urlsplit(link).netloc]
    later = client.get(path)
    assert later.status_code in {200, 404} and "evil" not in later.get_data(as_text=True)


def test_a_path_under_a_forged_script_name_is_not_the_post(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-hello.md", "Hello there.", title="Hello")
    client = make_app().test_client()
    # gunicorn strips the SCRIPT_NAME header's value from the path: //evil.example/posts/hello/ arrives as this
    response = client.get("/posts/hello/", environ_overrides={"SCRIPT_NAME": "//evil.example"})
    assert response.status_code == 404


def test_blog_url_path_is_the_mount_point_whatever_the_client_sends(make_app: AppFactory, write_post: WritePost) -> None:
    write_post("2020-01-01-hello.md", "Hello there.", title="Hello")
    client = make_app(BLOG_URL="https://example.com/blog").test_client()
    for script_name in ("", "/blog", "//evil.example"):  # a proxy that strips /blog, one that passes it, a forger
        response = client.get("/blog/posts/hello/", environ_overrides={"SCRIPT_NAME": ""}) if not script_name \
            else client.get("/posts/hello/", environ_overrides={"SCRIPT_NAME": script_name})
        expected = 404 if script_name.startswith("//") else 200
        assert response.status_code == expected, script_name
        if expected == 200:
            assert "/blog/feed.xml" in _links(response)


@pytest.mark.parametrize("path, target", [("/categories", "/categories/"), ("/posts/hello", "/posts/hello/"),
                                          ("/page/1/", "/"), ("/category/news/page/1/", "/category/news/")])
def test_redirects_never_take_their_host_from_the_request(make_app: AppFactory, write_post: WritePost, path: str,
                                                         target: str) -> None:
    write_post("2020-01-01-hello.md", "Hello there.", title="Hello", categories=["News"])
    client = make_app().test_client()
    for headers in ({"Host": "evil.example"}, {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}):
        response = client.get(path, headers=headers)
        assert response.status_code in {301, 308}
        assert response.headers["Location"] == target


@pytest.mark.slow
def test_a_forged_script_name_header_through_gunicorn_poisons_nothing(tmp_path: Path) -> None:
    import signal
    import socket
    import subprocess
    import sys
    import time

    from bench.faults import fetch, free_port

    (tmp_path / "posts").mkdir()
    (tmp_path / "posts" / "2020-01-01-x.md").write_text("---\ntitle: X\n---\nText.\n")
    port = free_port()
    env = {**os.environ, "BLOG_POSTS_DIR": str(tmp_path / "posts"), "BIND": f"127.0.0.1:{port}",
           "WEB_CONCURRENCY": "1"}
    root = Path(__file__).resolve().parent.parent

    def send(raw: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(raw)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            return answer

    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=root,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if fetch(port, "/healthz")[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        # gunicorn honours SCRIPT_NAME from loopback and strips it from the path
        forged = send(b"GET //evil.example/posts/x/ HTTP/1.0\r\nHost: a\r\nSCRIPT_NAME: //evil.example\r\n\r\n")
        assert forged.startswith(b"HTTP/1.0 404")
        later = send(b"GET /posts/x/ HTTP/1.0\r\nHost: a\r\n\r\n")
        assert later.startswith(b"HTTP/1.0 200") and b"//evil" not in later
        moved = send(b"GET /categories HTTP/1.0\r\nHost: evil.example\r\n\r\n")
        assert b"\r\nLocation: /categories/\r\n" in moved
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
