"""deploy/nginx-quire.conf in a real nginx in front of a real gunicorn: pages, assets, 304s, gzip, freshness."""

from __future__ import annotations

import gzip
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from bench.nginx_bench import main_config, site_config
from tests.conftest import eventually

ROOT = Path(__file__).resolve().parent.parent
NGINX = Path("/usr/sbin/nginx")
CACHE_SECONDS = 60  # the default: browsers keep pages that long, nginx one second (s-maxage)
TOKEN = "nginx-preview-token-0123"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not NGINX.exists(), reason="nginx is not installed")]


@dataclass
class Stack:
    """nginx on ``port`` proxying to gunicorn, over ``posts``; ``static`` is the folder nginx serves."""

    port: int
    posts: Path
    static: Path
    gunicorn_log: Path

    def get(self, path: str, headers: dict[str, str] | None = None,
            method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        """Send one request through nginx and return status, headers (lower-case names) and body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, headers={"Host": "blog.example.com", **(headers or {})})
            response = connection.getresponse()
            return response.status, {name.lower(): value for name, value in response.getheaders()}, response.read()
        finally:
            connection.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("nginx")
    posts = tmp / "posts"
    posts.mkdir()
    (posts / "2024-01-01-hello.md").write_text("---\ntitle: Hello nginx\n---\n\n" + "Cached text. " * 100 + "\n",
                                               encoding="utf-8")
    (posts / "2024-01-02-secret.md").write_text("---\ntitle: Secret draft\npublished: false\n---\n\nSoon.\n",
                                                encoding="utf-8")
    static = tmp / "static"  # a copy, so the test can add an asset; same bytes, so ?v= fingerprints match
    shutil.copytree(ROOT / "static", static)
    (static / "assets").mkdir(exist_ok=True)
    (static / "assets" / "pixel.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1">'
                                                 + "<!-- padding -->" * 40 + "</svg>\n", encoding="utf-8")
    (static / "assets" / "outside.txt").symlink_to(ROOT / "README.md")
    nginx_port, gunicorn_port = _free_port(), _free_port()
    gunicorn_log = tmp / "gunicorn.log"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BLOG_")}, "PORT": str(gunicorn_port),
           "BLOG_POSTS_DIR": str(posts), "BLOG_CACHE_SECONDS": str(CACHE_SECONDS), "BLOG_TRUSTED_PROXIES": "1",
           "BLOG_URL": "http://blog.example.com", "WEB_CONCURRENCY": "2", "BLOG_WATCH": "poll",
           "BLOG_POLL_INTERVAL_MS": "100", "BLOG_PREVIEW_TOKEN": TOKEN,
           "BLOG_CACHE_DIR": "off"}
    with open(gunicorn_log, "wb") as log:
        gunicorn = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    site = tmp / "quire.conf"
    site.write_text(site_config(tmp, nginx_port, gunicorn_port, static), encoding="utf-8")
    main = tmp / "nginx.conf"
    main.write_text(main_config(tmp, str(site), workers="1", connections=256, access_log=str(tmp / "access.log")),
                    encoding="utf-8")
    with open(tmp / "nginx.out", "wb") as output:
        nginx = subprocess.Popen([str(NGINX), "-p", str(tmp), "-c", str(main), "-e", str(tmp / "error.log"),
                                  "-g", "daemon off;"], stdout=output, stderr=subprocess.STDOUT)
    try:
        stack = Stack(nginx_port, posts, static, gunicorn_log)

        def ready() -> bool:
            assert nginx.poll() is None, (tmp / "nginx.out").read_text() + (tmp / "error.log").read_text()
            assert gunicorn.poll() is None, gunicorn_log.read_text()
            try:
                return stack.get("/healthz")[0] == 200
            except OSError:
                return False

        eventually(ready, timeout=30, interval=0.1)
        yield stack
    finally:
        _stop(nginx, signal.SIGQUIT)  # graceful: let workers finish
        _stop(gunicorn)


def test_pages_come_through_the_proxy_and_then_from_its_cache(stack: Stack) -> None:
    first = stack.get("/posts/hello/")
    assert first[0] == 200
    assert BeautifulSoup(first[2], "html.parser").find("h1").get_text(strip=True) == "Hello nginx"
    assert first[1]["cache-control"].startswith(f"public, max-age={CACHE_SECONDS}, s-maxage=1")
    assert eventually(lambda: stack.get("/posts/hello/")[1].get("x-cache-status") == "HIT")
    assert stack.get("/nowhere/")[0] == 404


@pytest.mark.parametrize(("path", "cache_control"),
                         [("/healthz", "no-store"), (f"/posts/secret/?preview={TOKEN}", "private, no-store")])
def test_previews_and_health_are_never_cached(stack: Stack, path: str, cache_control: str) -> None:
    for _ in range(3):
        status, headers, _ = stack.get(path)
        assert status == 200 and headers["cache-control"] == cache_control
        assert headers["x-cache-status"] == "MISS"
    assert stack.get("/posts/secret/")[0] == 404


def test_static_files_are_served_by_nginx_with_long_cache_for_fingerprints(stack: Stack) -> None:
    page = BeautifulSoup(stack.get("/")[2], "html.parser")
    css = next(link["href"] for link in page.find_all("link", rel="stylesheet") if "pygments-light" in link["href"])
    assert css.startswith("/static/css/pygments-light.css?v=")
    status, headers, body = stack.get(css)
    assert status == 200 and body == (ROOT / "static" / "css" / "pygments-light.css").read_bytes()
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert stack.get("/static/css/pygments-light.css")[1]["cache-control"] == "public, max-age=3600"
    status, headers, body = stack.get("/assets/pixel.svg")
    assert status == 200 and body.startswith(b"<svg") and headers["content-type"] == "image/svg+xml"
    assert stack.get("/assets/missing.png")[0] == 404  # falls through to Quire's own 404 page
    status, _, body = stack.get("/assets/outside.txt")  # a symlink out of static/: handed to Quire, which refuses
    assert status == 404 and b"Quire" in body and b"## Deploying" not in body
    served_by_gunicorn = stack.gunicorn_log.read_text()
    assert "GET /static/css/pygments-light.css" not in served_by_gunicorn
    assert "GET /assets/pixel.svg" not in served_by_gunicorn
    assert "GET /assets/missing.png" in served_by_gunicorn


@pytest.mark.parametrize("path", ["/posts/hello/", "/static/css/pygments-light.css", "/feed.xml"])
def test_conditional_requests_get_304(stack: Stack, path: str) -> None:
    status, headers, _ = stack.get(path)
    assert status == 200 and headers["etag"]
    assert stack.get(path, {"If-None-Match": headers["etag"]})[0] == 304
    assert stack.get(path, {"If-Modified-Since": headers["last-modified"]})[0] == 304


@pytest.mark.parametrize("path", ["/posts/hello/", "/static/css/pygments-light.css", "/feed.xml", "/assets/pixel.svg"])
def test_text_is_gzipped(stack: Stack, path: str) -> None:
    plain = stack.get(path)
    packed = stack.get(path, {"Accept-Encoding": "gzip"})
    assert packed[0] == 200 and packed[1]["content-encoding"] == "gzip"
    assert "content-encoding" not in plain[1]
    assert gzip.decompress(packed[2]) == plain[2]


def test_head_has_no_body(stack: Stack) -> None:
    status, headers, body = stack.get("/posts/hello/", method="HEAD")
    assert status == 200 and body == b"" and headers["content-type"].startswith("text/html")


def test_a_new_post_shows_through_the_proxy_within_seconds_not_the_browsers_cache_time(stack: Stack) -> None:
    def index_titles() -> list[str]:
        page = BeautifulSoup(stack.get("/")[2], "html.parser")
        return [link.get_text(strip=True) for link in page.select(".card-title a")]

    assert "Fresh from the press" not in index_titles()
    assert eventually(lambda: stack.get("/")[1].get("x-cache-status") in {"HIT", "STALE", "UPDATING"})
    (stack.posts / "2025-01-01-fresh.md").write_text("---\ntitle: Fresh from the press\n---\n\nNew.\n",
                                                     encoding="utf-8")
    # Documented bound: s-maxage (1 s), then the one request that triggers nginx's background refresh, plus
    # the worker's poll interval (0.1 s here) to notice the file; far below BLOG_CACHE_SECONDS (60 s), which
    # used to be the bound. The deadline leaves room for a loaded test machine.
    eventually(lambda: "Fresh from the press" in index_titles(), timeout=15, interval=0.05)
    assert stack.get("/posts/fresh/")[0] == 200


def test_nginx_revalidates_each_second_and_quire_answers_304_while_unchanged(stack: Stack) -> None:
    assert stack.get("/posts/hello/")[0] == 200

    def revalidated() -> bool:
        # A conditional request from nginx for a page Quire still holds: answered 304, nothing rendered.
        stack.get("/posts/hello/")
        return any("GET /posts/hello/" in line and '" 304 ' in line for line in stack.gunicorn_log.read_text().splitlines())

    eventually(revalidated, timeout=15, interval=0.1)
    status, headers, body = stack.get("/posts/hello/")
    assert status == 200 and b"Hello nginx" in body and headers["x-cache-status"] in {"HIT", "REVALIDATED", "STALE",
                                                                                      "UPDATING"}


@pytest.mark.parametrize("path", ["/static/css/pygments-light.css", "/static/css/pygments-light.css?v=1",
                                  "/assets/pixel.svg", "/assets/missing.png", "/posts/hello/", "/nowhere/"])
def test_files_nginx_serves_itself_carry_the_security_headers(stack: Stack, path: str) -> None:
    from blog.security import HEADERS

    status, headers, _ = stack.get(path)
    assert status in {200, 404}
    for name, value in HEADERS.items():
        assert headers.get(name.lower()) == value, (path, name)  # once, and Quire's value exactly
    assert "x-quire-cache" not in headers
