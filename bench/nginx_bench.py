"""Quire behind the shipped nginx config against nginx serving the same pages as static files.

Run from the checkout: ``.venv/bin/python bench/nginx_bench.py [--posts 1000] [--seconds 3] [--rounds 3]``. One nginx
(``worker_processes auto``) runs two sites: ``deploy/nginx-quire.conf`` with its ports and paths moved into a
temporary folder, proxying to gunicorn (2 sync workers) and caching pages by Quire's own Cache-Control, and
a plain static site holding the very bytes Quire served for the same URLs. wrk drives each page over
keep-alive connections; the report is a Markdown table of requests per second, latency and the ratio.
With ``--before CHECKOUT``, another checkout runs behind a second copy of the config too, side by side (for
instance pages kept by nginx for BLOG_CACHE_SECONDS against s-maxage=1 and a 304 each second).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import signal
from statistics import median
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import generate  # noqa: E402
from bench.harness import ROOT, Load, fetch, free_port, gunicorn, reusable_time_wait, table, wrk  # noqa: E402

NGINX = "/usr/sbin/nginx"
PAGES = ("index", "category", "post")


def site_config(scratch: Path, port: int, upstream: int, static: Path = ROOT / "static") -> str:
    """Return deploy/nginx-quire.conf listening on ``port``, proxying to ``upstream``, caching under ``scratch``.

    The nginx test runs the shipped file through this too, so a path or port the file no longer holds fails both.
    """
    text = (ROOT / "deploy" / "nginx-quire.conf").read_text(encoding="utf-8")
    for old, new in [("listen 80;", f"listen 127.0.0.1:{port};"),
                     ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};"),
                     ("/var/cache/nginx/quire", str(scratch / "cache")),
                     ("/srv/quire/static/assets/", f"{static}/assets/"),
                     ("/srv/quire/static/", f"{static}/")]:
        if text.count(old) != 1:
            raise ValueError(f"deploy/nginx-quire.conf no longer contains {old!r} once; update bench/nginx_bench.py")
        text = text.replace(old, new)
    return text


def main_config(scratch: Path, include: str, *, workers: str = "auto", connections: int = 1024,
                access_log: str = "off") -> str:
    """Return an nginx.conf that keeps every file under ``scratch`` and includes the sites ``include`` names."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # a root master would otherwise run workers as nobody
    temp = "\n".join(f"    {kind}_temp_path {scratch / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}worker_processes {workers};
pid {scratch / 'nginx.pid'};
error_log {scratch / 'error.log'} warn;
events {{ worker_connections {connections}; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {access_log};
    sendfile on;
    tcp_nopush on;
{temp}
    include {include};
}}
"""


def static_config(port: int, root: Path) -> str:
    """Return a plain static site on ``port`` serving ``root`` with the same gzip settings."""
    return f"""server {{
    listen 127.0.0.1:{port};
    root {root};
    index index.html;
    gzip on;
    gzip_min_length 256;
    gzip_types text/plain text/css application/xml application/atom+xml application/rss+xml application/json;
    location / {{ try_files $uri $uri/ =404; }}
}}
"""


@contextmanager
def nginx(scratch: Path, sites: list[str]) -> Iterator[None]:
    """Run one nginx (not as a daemon) with ``sites`` inside its http block, and always stop it."""
    for index, text in enumerate(sites):
        (scratch / f"site{index}.conf").write_text(text, encoding="utf-8")
    main = scratch / "nginx.conf"
    main.write_text(main_config(scratch, f"{scratch}/site*.conf"), encoding="utf-8")
    process = subprocess.Popen([NGINX, "-p", str(scratch), "-c", str(main), "-e", str(scratch / "error.log"),
                                "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(url: str) -> None:
    """Wait until ``url`` answers 200."""
    for _ in range(500):
        if fetch(url, timeout=2)[0] == 200:
            return
        time.sleep(0.02)
    raise SystemExit(f"{url} never answered 200")


def run(posts_count: int, seconds: int, connections: int, rounds: int, before: Path | None = None) -> str:
    """Measure every page three ways (four with ``before``) and return the Markdown report."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="quire-nginx-bench-") as scratch_name:
        scratch = Path(scratch_name)
        posts = scratch / "posts"
        generate(posts, posts_count)
        env = {"BLOG_POSTS_DIR": str(posts), "BLOG_URL": "http://127.0.0.1", "BLOG_TRUSTED_PROXIES": "1",
               "BLOG_CACHE_DIR": "off"}  # a temporary folder: its post cache would only be left behind
        with ExitStack() as running:
            server = running.enter_context(gunicorn(["-c", "gunicorn.conf.py", "-w", "2", "-k", "sync", "wsgi:app"], env))
            old = None if before is None else running.enter_context(
                gunicorn(["-c", "gunicorn.conf.py", "-w", "2", "-k", "sync", "wsgi:app"], env, cwd=before))
            html = fetch(server.base + "/")[1].decode()
            urls = {"index": "/",
                    "category": re.search(r'href="(/category/[^"/]+/)"', html).group(1),  # type: ignore[union-attr]
                    "post": re.search(r'href="(/posts/[^"]+)"', html).group(1)}  # type: ignore[union-attr]
            static_root = scratch / "static-site"
            for path in urls.values():
                target = static_root / path.strip("/") / "index.html"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(fetch(server.base + path)[1])
            proxy_port, static_port, old_port = free_port(), free_port(), free_port()
            running.enter_context(nginx(scratch, [site_config(scratch, proxy_port, int(server.base.rsplit(":", 1)[1])),
                                                  static_config(static_port, static_root)]))
            servers: tuple[tuple[str, str], ...] = (("gunicorn alone", server.base),
                                                    ("nginx + Quire", f"http://127.0.0.1:{proxy_port}"))
            if old is not None:  # its own nginx: one http block holds one keys_zone of that name
                old_scratch = scratch / "before"
                old_scratch.mkdir()
                running.enter_context(nginx(old_scratch, [site_config(old_scratch, old_port,
                                                                      int(old.base.rsplit(":", 1)[1]))]))
                servers += (("nginx + Quire before", f"http://127.0.0.1:{old_port}"),)
            servers += (("nginx static", f"http://127.0.0.1:{static_port}"),)
            for _, base in servers:
                wait_for(base + "/healthz" if base != f"http://127.0.0.1:{static_port}" else base + "/")
            for page in PAGES:
                for _, base in servers:
                    for _ in range(3):
                        fetch(base + urls[page])  # warm: fill nginx's cache and Quire's response cache
                # Rounds alternate the servers, so a burst of other work on the machine hits them all alike.
                measured: dict[str, list[Load]] = {name: [] for name, _ in servers}
                for _ in range(rounds):
                    for name, base in servers:
                        measured[name].append(wrk(base + urls[page], seconds, threads=2, connections=connections))
                static = measured["nginx static"]
                for name, loads in measured.items():
                    ratios = [load.requests_per_second / other.requests_per_second
                              for load, other in zip(loads, static)]
                    rows.append([page, name, f"{median(load.requests_per_second for load in loads):,.0f}",
                                 f"{median(load.p50_ms for load in loads):.2f}",
                                 f"{median(load.p99_ms for load in loads):.2f}", sum(load.errors for load in loads),
                                 f"{median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})"])
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"Measured {stamp} on {os.cpu_count()} cores (wrk, nginx and gunicorn share them); {posts_count:,} "
              f"generated posts; wrk -t2 -c{connections} -d{seconds:g}s per page over keep-alive, {rounds} rounds "
              "taking turns, medians (ratio range over the rounds in brackets); nginx worker_processes auto; "
              "gunicorn -w 2 sync; BLOG_CACHE_SECONDS=60.\n")
    return header + "\n" + table(["page", "served by", "req/s", "p50 ms", "p99 ms", "errors", "of nginx static"],
                                 rows) + "\n"


def main() -> None:
    """Run the comparison and print (and save) the Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--before", type=Path, help="another checkout to run behind nginx too, side by side")
    arguments = parser.parse_args()
    with reusable_time_wait():
        text = run(arguments.posts, arguments.seconds, arguments.connections, arguments.rounds, arguments.before)
    output = ROOT / "bench" / "results"
    output.mkdir(exist_ok=True)
    (output / "nginx.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
