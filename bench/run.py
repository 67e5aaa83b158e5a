"""Quire against the Flask-FlatPages baseline and a pre-rendered ceiling, side by side in one run.

``make bench`` runs the full mode (100, 1,000 and 10,000 posts, 10 s of wrk per page); ``make bench-short``
(``python bench/run.py --short``) the CI mode. Every server runs on 127.0.0.1 under the same gunicorn settings
(bench/gunicorn_conf.py, 2 sync workers), one after another. The report is printed and saved to
bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import math
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import generate  # noqa: E402
from bench.harness import (  # noqa: E402
    ROOT, Load, OtherCpu, Server, ServerFailed, WrkFailed, fetch, free_port, interrupt_on_sigterm, percentile,
    serve, table, wrk, wrk_binary,
)

PAGES = ("index", "category", "post")
QUIRE, BASELINE, CEILING = "Quire", "Flask-FlatPages baseline", "ceiling (pre-rendered)"
STREAK = 10  # answers in a row that must agree: with 2 workers answering in turn, that is both of them
POLL_SECONDS = 0.01
NEW_POST_TIMEOUT = 15.0
WARM_REQUESTS = 5


@dataclass(frozen=True)
class Settings:
    """How much to measure: post counts, wrk's duration and load, new-post trials."""

    sizes: tuple[int, ...]
    seconds: float
    trials: int
    baseline_trials: int
    threads: int = 2
    connections: int = 16


@dataclass
class Result:
    """What one app measured at one size; ``failure`` says why it has no figures."""

    app: str
    size: int
    cold_start: float = float("nan")
    restart: float = float("nan")  # Quire only: the first 200 again, with the post cache the first start wrote
    rss_mb: list[float] = field(default_factory=list)
    loads: dict[str, Load] = field(default_factory=dict)
    load_failures: dict[str, str] = field(default_factory=dict)
    new_post_ms: list[float] = field(default_factory=list)
    other_cpu: list[float] = field(default_factory=list)
    failure: str = ""


def link_paths(page: str) -> dict[str, str]:
    """Return the paths of the index, the first category and the first post that a home page links to."""
    found = {}
    # A category is one segment deep (not its feed or page 2); a post's permalink may be deeper.
    for name, pattern in (("category", r'/category/[^"/?#]+/'), ("post", r'/posts/[^"?#]+/')):
        link = re.search(rf'href="(?:https?://[^/"]+)?({pattern})"', page)
        if link is None:
            raise ServerFailed(f"the home page links no {pattern.split('[')[0]}... page")
        found[name] = html.unescape(link.group(1))
    return {"index": "/", **found}


def until_consistent(url: str, marker: bytes, present: bool, started: float, timeout: float) -> float:
    """Poll ``url`` until STREAK answers in a row have ``marker`` (or lack it); return seconds from ``started``.

    The seconds are counted to the first answer of that streak.

    Returns infinity when that has not happened ``timeout`` seconds after ``started``.
    """
    streak, first = 0, 0.0
    while streak < STREAK:
        left = started + timeout - time.perf_counter()
        if left <= 0:
            return float("inf")
        status, body = fetch(url, timeout=max(0.1, left))
        if status == 200 and (marker in body) == present:
            if streak == 0:
                first = time.perf_counter()
            streak += 1
        else:
            streak = 0
            time.sleep(POLL_SECONDS)
    return first - started


def new_post_latency(server: Server, folder: Path, trials: int) -> list[float]:
    """Time, in ms, from a new post's rename into the folder until every worker lists it on the home page.

    Each post is dated an hour ago, so it is the newest (never in the future) and tops the home page. It is
    removed, and its removal waited for, before the next trial. Stops at the first post never seen.
    """
    timings = []
    token = secrets.token_hex(4)  # keeps the title from matching anything the generated posts say
    for trial in range(trials):
        title = f"Benchmark fresh post {trial} {token}"
        marker = title.encode()
        date = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
        path = folder / f"{date:%Y-%m-%d}-benchmark-fresh-post-{trial}-{token}.md"
        # Written whole under a hidden name, then renamed in, as editors and deploys do: no half-written post.
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(f"---\nlayout: post\ntitle: {title}\ndate: {date:%Y-%m-%d %H:%M:%S} +0000\n"
                             "categories: [news]\ntags: [feeds]\nauthor: Ada Lindqvist\n---\n\n"
                             "Written while the server runs.\n", encoding="utf-8")
        started = time.perf_counter()
        os.rename(temporary, path)
        seconds = until_consistent(server.base + "/", marker, True, started, NEW_POST_TIMEOUT)
        timings.append(seconds * 1000)
        path.unlink()
        until_consistent(server.base + "/", marker, False, time.perf_counter(), NEW_POST_TIMEOUT)
        if seconds == float("inf"):
            break
    return timings


def load_pages(result: Result, server: Server, paths: dict[str, str], settings: Settings) -> None:
    """Warm each page and drive it with wrk; then record each worker's RSS."""
    for page in PAGES:
        url = server.base + paths[page]
        statuses = {fetch(url, timeout=60)[0] for _ in range(WARM_REQUESTS)}
        if statuses != {200}:
            result.load_failures[page] = f"{paths[page]} answered {sorted(statuses)}"
            continue
        meter = OtherCpu(server.pids())
        try:
            result.loads[page] = wrk(url, settings.seconds, settings.threads, settings.connections)
            result.other_cpu.append(meter.share())
        except WrkFailed as error:
            result.load_failures[page] = str(error).splitlines()[0]
        # Answered only once the requests wrk left queued are done, so the next page starts on idle workers.
        fetch(url, timeout=60)
        if not server.alive():
            raise ServerFailed(f"exited during the load on {paths[page]}\n" + server.log_tail())
    result.rss_mb = server.worker_rss_mb()


def bench_quire(size: int, posts: Path, ceiling: Path, settings: Settings) -> tuple[Result, dict[str, str] | None]:
    """Measure Quire and save its pages for the ceiling; return the result and the paths it linked to."""
    result = Result(QUIRE, size)
    if not (ROOT / "wsgi.py").exists():
        result.failure = f"no wsgi.py in {ROOT}"
        return result, None
    port = free_port()
    # The post cache starts empty, so the first start parses every file, and is deleted with the posts.
    env = {"BLOG_POSTS_DIR": str(posts), "BLOG_URL": f"http://127.0.0.1:{port}",
           "BLOG_CACHE_DIR": str(posts.parent / "post-cache")}
    paths = None
    try:
        with serve("wsgi:app", env, port=port) as server:
            result.cold_start = server.cold_start
            paths = link_paths(fetch(server.base + "/")[1].decode("utf-8", "replace"))
            manifest = {}
            for page, path in paths.items():
                status, body = fetch(server.base + path)
                if status == 200:
                    (ceiling / page).write_bytes(body)
                    manifest[urllib.parse.unquote(path)] = page  # the ceiling looks up the decoded PATH_INFO
            (ceiling / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
            load_pages(result, server, paths, settings)
            result.new_post_ms = new_post_latency(server, posts, settings.trials)
        with serve("wsgi:app", env, port=port) as server:  # a restart, as after a deploy
            result.restart = server.cold_start
    except ServerFailed as error:
        result.failure = str(error).splitlines()[0]
    return result, paths


def baseline_paths(quire: dict[str, str] | None, files: list[Path]) -> dict[str, str]:
    """Return the baseline's URLs for the post and category Quire's home page linked, or the newest post's."""
    newest = max(files, key=lambda path: path.name)  # names start with the date
    stem = newest.stem
    category_line = re.search(r"^categories: \[([^],]+)", newest.read_text(encoding="utf-8"), re.MULTILINE)
    category = category_line.group(1).strip() if category_line else "news"
    if quire is not None:
        slug = quire["post"].strip("/").rsplit("/", 1)[-1]
        stem = next((path.stem for path in files if path.stem[11:] == slug), stem)
        category = urllib.parse.unquote(quire["category"].strip("/").rsplit("/", 1)[-1])
    return {"index": "/", "category": f"/category/{category}/", "post": f"/posts/{stem}/"}


def bench_app(name: str, size: int, app: str, env: dict[str, str], paths: dict[str, str], settings: Settings,
              posts: Path | None) -> Result:
    """Measure one of the comparison apps; time new posts too when given the folder it serves."""
    result = Result(name, size)
    try:
        with serve(app, env, probe=paths["index"]) as server:
            result.cold_start = server.cold_start
            load_pages(result, server, paths, settings)
            if posts is not None:
                result.new_post_ms = new_post_latency(server, posts, settings.baseline_trials)
    except ServerFailed as error:
        result.failure = str(error).splitlines()[0]
    return result


def run_size(size: int, settings: Settings) -> list[Result]:
    """Generate ``size`` posts and measure Quire, the baseline and the ceiling over them, one after another."""
    with tempfile.TemporaryDirectory(prefix="quire-bench-") as scratch:
        posts, ceiling = Path(scratch) / "posts", Path(scratch) / "ceiling"
        files = generate(posts, size)
        # The kernel writes the new files back about 30 s later, in the middle of a measured run (at 10,000
        # posts, 80 MB): flush them now instead.
        os.sync()
        ceiling.mkdir()
        quire, quire_paths = bench_quire(size, posts, ceiling, settings)
        baseline = bench_app(BASELINE, size, "bench.baseline_app:app", {"BENCH_POSTS_DIR": str(posts)},
                             baseline_paths(quire_paths, files), settings, posts)
        if quire_paths is None:
            return [quire, baseline, Result(CEILING, size, failure="needs Quire's pages, and Quire failed")]
        ceiling_result = bench_app(CEILING, size, "bench.ceiling_app:app", {"BENCH_CEILING_DIR": str(ceiling)},
                                   quire_paths, settings, None)
        return [quire, baseline, ceiling_result]


def _number(value: float, digits: int = 0) -> str:
    return "–" if math.isnan(value) else f"{value:,.{digits}f}"


def _latencies(values: list[float]) -> str:
    if not values:
        return "–"
    seen = [value for value in values if value != float("inf")]
    if not seen:
        return f"not seen within {NEW_POST_TIMEOUT:.0f} s"
    text = f"{percentile(seen, 0.5):,.0f} / {percentile(seen, 0.99):,.0f} (n={len(seen)})"
    return text if len(seen) == len(values) else text + f", then one not seen within {NEW_POST_TIMEOUT:.0f} s"


def report(results: list[Result], settings: Settings, context: str) -> str:
    """Return the Markdown report: each page's load, each app's start-up, memory and new-post time, ratios."""
    sizes = sorted({result.size for result in results})
    load_rows: list[list[object]] = []
    app_rows: list[list[object]] = []
    for result in results:
        size = f"{result.size:,}"
        if result.failure:
            load_rows.append([size, result.app, "all", f"failed: {result.failure}", "", "", ""])
            app_rows.append([size, result.app, f"failed: {result.failure}", "", "", "", ""])
            continue
        for page in PAGES:
            load = result.loads.get(page)
            if load is None:
                load_rows.append([size, result.app, page, f"failed: {result.load_failures.get(page, '?')}",
                                  "", "", ""])
                continue
            load_rows.append([size, result.app, page, _number(load.requests_per_second), _number(load.p50_ms, 2),
                              _number(load.p99_ms, 2), f"{load.errors:,} of {load.requests:,}"])
        app_rows.append([size, result.app, _number(result.cold_start, 2), _number(result.restart, 2),
                         " / ".join(f"{rss:.1f}" for rss in result.rss_mb) or "–", _latencies(result.new_post_ms),
                         f"{max(result.other_cpu):.0%}" if result.other_cpu else "–"])
    by_key = {(result.size, result.app): result for result in results if not result.failure}

    def rate(size: int, app: str, page: str) -> float:
        result = by_key.get((size, app))
        load = result.loads.get(page) if result else None
        return load.requests_per_second if load else float("nan")

    def ratio(size: int, page: str, other: str, digits: int) -> str:
        value = rate(size, QUIRE, page) / rate(size, other, page)
        return "–" if math.isnan(value) else f"{value:,.{digits}f}×"

    ratio_rows = [[f"{size:,}", page, ratio(size, page, BASELINE, 1), ratio(size, page, CEILING, 2)]
                  for size in sizes for page in PAGES]
    spread = []
    low, high = by_key.get((sizes[0], QUIRE)), by_key.get((sizes[-1], QUIRE))
    for page in PAGES:
        if low and high and len(sizes) > 1 and page in low.loads and page in high.loads:
            spread.append(f"{page} {high.loads[page].p99_ms / low.loads[page].p99_ms:.2f}×")
    parts = [
        context,
        "### Load, per page",
        table(["posts", "app", "page", "req/s", "p50 ms", "p99 ms", "errors"], load_rows, left=3),
        "### Start-up, memory, new posts",
        ("First 200 on `/` is counted from the process spawn; Quire's first start parses every post (its post "
         "cache is empty), its restart reads the cache that start wrote. RSS is each worker's after the load (pages shared "
         "copy-on-write with the master count in each). A new post is timed from its rename into the folder to "
         f"the first of {STREAK} home pages in a row that list it (so both workers do); p50 / p99 in ms. "
         "The last column is the most CPU that processes outside the benchmark took during any of the app's wrk "
         "runs: where it is high the machine was shared and that app's figures are low."),
        table(["posts", "app", "first 200 on / (s)", "restart (s)", "RSS per worker (MB)", "new post p50 / p99 ms",
               "others' CPU"], app_rows, left=2),
        "### Ratios of req/s",
        table(["posts", "page", "Quire / baseline", "Quire / ceiling"], ratio_rows, left=2),
    ]
    if spread:
        parts.append(f"Quire's p99 at {sizes[-1]:,} posts over its p99 at {sizes[0]:,}: " + ", ".join(spread) + ".")
    return "\n\n".join(parts) + "\n"


def describe(settings: Settings) -> str:
    """Return the report's opening: when, on what, at which commit, under which settings."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"## Quire benchmark, {stamp}\n\nCommit {commit}; {os.cpu_count()} cores, load average {load} at the "
            f"start; Python {sys.version.split()[0]}, gunicorn {version('gunicorn')}. Every app: "
            f"bench/gunicorn_conf.py (Quire's gunicorn.conf.py, access log off), 2 sync workers on 127.0.0.1; "
            f"`wrk -t{settings.threads} -c{settings.connections} -d{settings.seconds:g}s --timeout=30s --latency` "
            "per page after 5 warm-up requests.")


def main() -> int:
    """Benchmark Quire against the Flask-FlatPages baseline and a pre-rendered ceiling; print the report."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--short", action="store_true",
                        help="CI mode: 100 and 1,000 posts, 2 s of wrk per page, 5 new-post trials")
    parser.add_argument("--sizes", type=lambda text: tuple(int(part) for part in text.split(",")),
                        help="post counts, comma-separated (default 100,1000,10000; 100,1000 with --short)")
    parser.add_argument("--seconds", type=float, help="wrk's duration per page (default 10; 2 with --short)")
    parser.add_argument("--trials", type=int, help="new posts timed on Quire (default 20; 5 with --short)")
    arguments = parser.parse_args()
    wrk_binary()  # before generating anything, so a missing wrk costs no time
    trials = arguments.trials or (5 if arguments.short else 20)
    settings = Settings(sizes=arguments.sizes or ((100, 1000) if arguments.short else (100, 1000, 10000)),
                        seconds=arguments.seconds or (2 if arguments.short else 10), trials=trials,
                        # The baseline re-reads the folder on every request, so its trials are few and slow.
                        baseline_trials=min(trials, 5))
    context = describe(settings)
    started = time.perf_counter()
    results: list[Result] = []
    try:
        with interrupt_on_sigterm():
            for size in settings.sizes:
                print(f"bench: {size:,} posts…", file=sys.stderr, flush=True)
                results += run_size(size, settings)
    except KeyboardInterrupt:
        print("bench: interrupted; every server it started is stopped", file=sys.stderr)
        return 130
    text = report(results, settings, context) + f"\nThe whole run took {time.perf_counter() - started:.0f} s.\n"
    output = ROOT / "bench" / "results"
    output.mkdir(exist_ok=True)
    (output / "latest.md").write_text(text, encoding="utf-8")
    print(text)
    return 1 if any(result.failure or result.load_failures for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
