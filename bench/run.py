"""Quire against the Flask-FlatPages baseline and a pre-rendered ceiling, side by side in one run.

``make bench`` runs the full mode (100, 1,000, 10,000 and 100,000 posts, 10 s of wrk per load); ``make
bench-short`` (``python bench/run.py --short``) the CI mode. Every server runs on 127.0.0.1 under the same
gunicorn settings (bench/gunicorn_conf.py, 2 sync workers), one after another. Besides one hot URL per page
type, Quire and the ceiling are driven over every post the sitemap lists: a crawler (each post once, in a
random order) and readers (Zipf popularity over all posts), through bench/urls.lua, Quire both on its first
start and after a restart over a page cache holding every post; and Quire's hot pages again while one post
is edited every second. ``--old DIR`` measures another checkout (an older commit) of
Quire beside this one. ``--startup`` measures only what start-up and memory need (Quire alone: cold start,
the crawl and the hot pages that make a worker's memory what serving makes it, PSS, new posts, a restart),
for 100,000 posts in minutes rather than the whole matrix. The report is printed and saved to
bench/results/latest.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import math
import os
import random
import re
import secrets
import threading
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
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
CHANGING_PAGES = ("index", "post")  # the hot pages measured again while posts change
MODES = ("crawl", "zipf")
QUIRE, OLD, BASELINE, CEILING = "Quire", "Quire (old)", "Flask-FlatPages baseline", "ceiling (pre-rendered)"
BASELINE_MAX_POSTS = 10_000  # it re-reads every file per request: at 100,000 posts it cannot even start in time
ZIPF_EXPONENT = 1.0
ZIPF_DRAWS = 200_000  # readers' requests, cycled: far more than any run makes, so popularity is what repeats
CHANGE_SECONDS = 1.0
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
    old: Path | None = None  # another checkout of Quire, measured beside this one
    posts_cache: Path | None = None  # generated posts kept here and reused by the next run
    startup: bool = False  # Quire alone, and only the loads that shape a worker's memory (no Zipf, no edits)


@dataclass
class Result:
    """What one app measured at one size; ``failure`` says why it has no figures."""

    app: str
    size: int
    cold_start: float = float("nan")
    restart: float = float("nan")  # Quire only: the first 200 again, with the post cache the first start wrote
    rss_mb: list[float] = field(default_factory=list)
    pss_mb: list[float] = field(default_factory=list)
    loads: dict[str, Load] = field(default_factory=dict)
    modes: dict[str, Load] = field(default_factory=dict)  # crawl and zipf, over every post, on a first start
    filled: dict[str, Load] = field(default_factory=dict)  # the same after a restart over a full page cache
    changing: dict[str, Load] = field(default_factory=dict)  # hot pages while one post changes a second
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


def post_paths(server: Server) -> list[str]:
    """Return the paths of the posts the sitemap lists (all of them, up to its 50,000 URLs)."""
    status, body = fetch(server.base + "/sitemap.xml", timeout=60)
    if status != 200:
        raise ServerFailed(f"/sitemap.xml answered {status}")
    locations = re.findall(r"<loc>([^<]+)</loc>", body.decode("utf-8", "replace"))
    paths = [urllib.parse.urlsplit(html.unescape(location)).path for location in locations]
    return [path for path in paths if path.startswith("/posts/")]


def write_url_files(folder: Path, paths: list[str], seed: int = 15) -> dict[str, Path]:
    """Write the crawl's order (every post once, shuffled) and the readers' requests (Zipf over all posts)."""
    rng = random.Random(seed)
    crawl = paths[:]
    rng.shuffle(crawl)
    ranked = paths[:]
    rng.shuffle(ranked)  # popularity has nothing to do with age or with the crawl's order
    weights, total = [], 0.0
    for rank in range(1, len(ranked) + 1):
        total += rank ** -ZIPF_EXPONENT
        weights.append(total)
    readers = rng.choices(ranked, cum_weights=weights, k=ZIPF_DRAWS)
    files = {"crawl": folder / "crawl.txt", "zipf": folder / "zipf.txt"}
    files["crawl"].write_text("\n".join(crawl) + "\n", encoding="utf-8")
    files["zipf"].write_text("\n".join(readers) + "\n", encoding="utf-8")
    return files


def drive_modes(result: Result, server: Server, files: dict[str, Path], settings: Settings,
                filled: bool = False) -> None:
    """Crawl every post once, then read posts by Zipf popularity, with wrk over the URL files.

    ``filled``: the server is a restart over a page cache holding every post, and its figures go apart.
    """
    for mode in MODES[:1] if settings.startup else MODES:
        meter = OtherCpu(server.pids())
        try:
            (result.filled if filled else result.modes)[mode] = wrk(
                server.base + "/", settings.seconds, settings.threads, settings.connections, paths=files[mode],
                once=mode == "crawl")
            result.other_cpu.append(meter.share())
        except WrkFailed as error:
            result.load_failures[f"{mode}, filled" if filled else mode] = str(error).splitlines()[0]
        fetch(server.base + "/", timeout=60)  # wait out what wrk left queued
        if not server.alive():
            raise ServerFailed(f"exited during the {mode} load\n" + server.log_tail())


def drive_while_changing(result: Result, server: Server, folder: Path, paths: dict[str, str],
                         settings: Settings) -> None:
    """Drive the hot pages while one post (never the one measured) is edited every second; restore it after."""
    files = sorted(folder.glob("*.md"))
    rng = random.Random(1)
    stop = threading.Event()
    originals: dict[Path, bytes] = {}

    def edit() -> None:
        edits = 0
        while not stop.wait(CHANGE_SECONDS):
            path = rng.choice(files)
            originals.setdefault(path, path.read_bytes())
            edits += 1
            temporary = path.with_name(f".{path.name}.tmp")
            temporary.write_bytes(originals[path] + f"\nEdited by the benchmark ({edits}).\n".encode())
            os.rename(temporary, path)

    for page in CHANGING_PAGES:
        editor = threading.Thread(target=edit, name="bench-editor", daemon=True)
        stop.clear()
        editor.start()
        try:
            result.changing[page] = wrk(server.base + paths[page], settings.seconds, settings.threads,
                                        settings.connections)
        except WrkFailed as error:
            result.load_failures[f"{page} while changing"] = str(error).splitlines()[0]
        finally:
            stop.set()
            editor.join()
        fetch(server.base + paths[page], timeout=60)
    for path, text in originals.items():
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(text)
        os.rename(temporary, path)


def save_for_ceiling(server: Server, ceiling: Path, paths: dict[str, str], posts: list[str]) -> None:
    """Fetch every hot page and every post from Quire and keep their bytes for the ceiling to serve."""
    wanted = {**{path: page for page, path in paths.items()},
              **{path: f"post-{number}" for number, path in enumerate(posts) if path not in paths.values()}}

    def keep(item: tuple[str, str]) -> tuple[str, str] | None:
        path, name = item
        status, body = fetch(server.base + path, timeout=60)
        if status != 200:
            return None
        (ceiling / name).write_bytes(body)
        return urllib.parse.unquote(path), name  # the ceiling looks up the decoded PATH_INFO

    with ThreadPoolExecutor(max_workers=4) as pool:
        manifest = dict(found for found in pool.map(keep, wanted.items()) if found is not None)
    (ceiling / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def ask_every_post(server: Server, posts: list[str]) -> None:
    """Ask for every post once, four at a time (so the server's page cache holds them all)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda path: fetch(server.base + path, timeout=60), posts))


def load_pages(result: Result, server: Server, paths: dict[str, str], settings: Settings) -> None:
    """Warm each page and drive it with wrk; then record each worker's RSS and PSS."""
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
    result.pss_mb = server.worker_pss_mb()


def bench_quire(name: str, root: Path, size: int, posts: Path, scratch: Path, settings: Settings,
                files: dict[str, Path] | None) -> tuple[Result, dict[str, str] | None, dict[str, Path] | None]:
    """Measure the Quire checkout at ``root``; return the result, the paths it linked to and the URL files.

    The first Quire measured at a size writes the URL files from its sitemap; the one of this checkout
    (``name`` QUIRE) also saves every page it served for the ceiling.
    """
    result = Result(name, size)
    if not (root / "wsgi.py").exists():
        result.failure = f"no wsgi.py in {root}"
        return result, None, files
    port = free_port()
    # The post cache starts empty, so the first start parses every file, and is deleted with the posts.
    env = {"BLOG_POSTS_DIR": str(posts), "BLOG_URL": f"http://127.0.0.1:{port}",
           "BLOG_CACHE_DIR": str(scratch / f"cache-{secrets.token_hex(4)}")}
    paths = None
    try:
        with serve("wsgi:app", env, port=port, root=root) as server:
            result.cold_start = server.cold_start
            paths = link_paths(fetch(server.base + "/")[1].decode("utf-8", "replace"))
            listed = post_paths(server)
            if files is None:
                files = write_url_files(scratch, listed)
            drive_modes(result, server, files, settings)
            load_pages(result, server, paths, settings)
            if not settings.startup:
                drive_while_changing(result, server, posts, paths, settings)
            result.new_post_ms = new_post_latency(server, posts, settings.trials)
            if not settings.startup:  # every post asked for once: the page cache holds them all
                if name == QUIRE:
                    save_for_ceiling(server, scratch / "ceiling", paths, listed)
                else:
                    ask_every_post(server, listed)
        with serve("wsgi:app", env, port=port, root=root) as server:  # a restart, as after a deploy
            result.restart = server.cold_start
            if not settings.startup:
                drive_modes(result, server, files, settings, filled=True)
    except ServerFailed as error:
        result.failure = str(error).splitlines()[0]
    return result, paths, files


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
              posts: Path | None, files: dict[str, Path] | None = None) -> Result:
    """Measure one of the comparison apps; crawl and read too when given URL files, time new posts when given
    the folder it serves."""
    result = Result(name, size)
    try:
        with serve(app, env, probe=paths["index"]) as server:
            result.cold_start = server.cold_start
            if files is not None:
                drive_modes(result, server, files, settings)
            load_pages(result, server, paths, settings)
            if posts is not None:
                result.new_post_ms = new_post_latency(server, posts, settings.baseline_trials)
    except ServerFailed as error:
        result.failure = str(error).splitlines()[0]
    return result


def generated_posts(size: int, scratch: Path, settings: Settings) -> tuple[Path, list[Path]]:
    """Return the folder of ``size`` generated posts and their files: made in ``scratch``, or reused."""
    if settings.posts_cache is None:
        posts = scratch / "posts"
        return posts, generate(posts, size)
    posts = settings.posts_cache / f"posts-{size}"
    marker = settings.posts_cache / f"posts-{size}.done"  # written last: a folder without it is half made
    if not marker.exists():
        print(f"bench: generating {size:,} posts into {posts} (reused by later runs)…", file=sys.stderr, flush=True)
        generate(posts, size)
        marker.write_text("generated by bench/generate.py, seed 2024\n", encoding="utf-8")
    return posts, sorted(posts.glob("*.md"))


def run_size(size: int, settings: Settings) -> list[Result]:
    """Generate ``size`` posts and measure Quire, the baseline and the ceiling over them, one after another."""
    with tempfile.TemporaryDirectory(prefix="quire-bench-") as scratch_name:
        scratch = Path(scratch_name)
        posts, generated = generated_posts(size, scratch, settings)
        # The kernel writes the new files back about 30 s later, in the middle of a measured run (at 10,000
        # posts, 80 MB): flush them now instead.
        os.sync()
        (scratch / "ceiling").mkdir()
        results = []
        files = None
        if settings.old is not None:
            old, _, files = bench_quire(OLD, settings.old, size, posts, scratch, settings, files)
            results.append(old)
        quire, quire_paths, files = bench_quire(QUIRE, ROOT, size, posts, scratch, settings, files)
        results.append(quire)
        if settings.startup:
            return results
        if size <= BASELINE_MAX_POSTS:
            results.append(bench_app(BASELINE, size, "bench.baseline_app:app", {"BENCH_POSTS_DIR": str(posts)},
                                     baseline_paths(quire_paths, generated), settings, posts))
        if quire_paths is None:
            return [*results, Result(CEILING, size, failure="needs Quire's pages, and Quire failed")]
        results.append(bench_app(CEILING, size, "bench.ceiling_app:app",
                                 {"BENCH_CEILING_DIR": str(scratch / "ceiling")}, quire_paths, settings, None, files))
        return results


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


def _load_cells(load: Load | None, failure: str) -> list[object]:
    if load is None:
        return [f"failed: {failure or '?'}", "", "", ""]
    return [_number(load.requests_per_second), _number(load.p50_ms, 2), _number(load.p99_ms, 2),
            f"{load.errors:,} of {load.requests:,}"]


def report(results: list[Result], settings: Settings, context: str) -> str:
    """Return the Markdown report: each load, each app's start-up, memory and new-post time, ratios."""
    sizes = sorted({result.size for result in results})
    load_rows: list[list[object]] = []
    mode_rows: list[list[object]] = []
    changing_rows: list[list[object]] = []
    app_rows: list[list[object]] = []
    by_key = {(result.size, result.app): result for result in results if not result.failure}

    def ceiling_rate(size: int, kind: str, page: str) -> float:
        ceiling = by_key.get((size, CEILING))
        load = getattr(ceiling, kind).get(page) if ceiling else None
        return load.requests_per_second if load else float("nan")

    def ratio(load: Load | None, size: int, kind: str, page: str) -> str:
        value = (load.requests_per_second if load else float("nan")) / ceiling_rate(size, kind, page)
        return "–" if math.isnan(value) else f"{value:,.2f}×"

    for result in results:
        size = f"{result.size:,}"
        if result.failure:
            load_rows.append([size, result.app, "all", f"failed: {result.failure}", "", "", "", ""])
            app_rows.append([size, result.app, f"failed: {result.failure}", "", "", "", "", ""])
            continue
        for page in PAGES:
            load = result.loads.get(page)
            load_rows.append([size, result.app, page, *_load_cells(load, result.load_failures.get(page, "")),
                              ratio(load, result.size, "loads", page) if result.app != CEILING else ""])
        if result.app != BASELINE:
            for mode, filled in ((mode, filled) for filled in (False, True) for mode in MODES):
                load = (result.filled if filled else result.modes).get(mode)
                failure = result.load_failures.get(f"{mode}, filled" if filled else mode)
                if load is None and failure is None:
                    continue  # not measured (--startup, or the ceiling's restart)
                label = (f"{mode}, restart, page cache full" if filled
                         else mode if result.app == CEILING else f"{mode}, cold")
                mode_rows.append([size, result.app, label, *_load_cells(load, failure or ""),
                                  ratio(load, result.size, "modes", mode) if result.app != CEILING else ""])
        for page in CHANGING_PAGES if result.app in (QUIRE, OLD) else ():
            load = result.changing.get(page)
            if load is None and f"{page} while changing" not in result.load_failures:
                continue
            changing_rows.append([size, result.app, page,
                                  *_load_cells(load, result.load_failures.get(f"{page} while changing", "")),
                                  ratio(load, result.size, "loads", page)])
        app_rows.append([size, result.app, _number(result.cold_start, 2), _number(result.restart, 2),
                         " / ".join(f"{rss:.0f}" for rss in result.rss_mb) or "–",
                         " / ".join(f"{pss:.0f}" for pss in result.pss_mb) or "–", _latencies(result.new_post_ms),
                         f"{max(result.other_cpu):.0%}" if result.other_cpu else "–"])
    spread = []
    low, high = by_key.get((sizes[0], QUIRE)), by_key.get((sizes[-1], QUIRE))
    for page in PAGES:
        if low and high and len(sizes) > 1 and page in low.loads and page in high.loads:
            spread.append(f"{page} {high.loads[page].p99_ms / low.loads[page].p99_ms:.2f}×")
    baseline_rows = []
    for size in sizes:
        quire, baseline = by_key.get((size, QUIRE)), by_key.get((size, BASELINE))
        for page in PAGES:
            if quire and baseline and page in quire.loads and page in baseline.loads:
                baseline_rows.append([f"{size:,}", page, f"{quire.loads[page].requests_per_second / baseline.loads[page].requests_per_second:,.1f}×"])
    parts = [
        context,
        "### Load, one hot URL per page",
        table(["posts", "app", "page", "req/s", "p50 ms", "p99 ms", "errors", "/ ceiling"], load_rows, left=3),
        "### Load over every post: a crawler and Zipf readers",
        ("URLs are the sitemap's posts (all of them, up to its 50,000 URLs). The crawl asks for each once, in a "
         "random order, and stops when all are done (req/s over the time that took; the ceiling finishes "
         "soonest; one wrk thread, 16 connections); the readers draw posts by Zipf popularity (s = 1, popularity "
         "unrelated to age) for the whole duration. Quire is measured twice: cold, on its first start (every "
         "cache empty), and after a restart once every post has been asked for (memory empty, the page cache "
         "on disk full, as after a deploy once the filler is done). The ceiling holds every one of those pages, "
         "the bytes Quire sent."),
        table(["posts", "app", "load", "req/s", "p50 ms", "p99 ms", "errors", "/ ceiling"], mode_rows, left=3),
        "### Hot pages while one post changes every second",
        ("One post file (never the page measured) is rewritten and renamed into place every second during the "
         "run; the ratio is to the ceiling's figure for the same page above."),
        table(["posts", "app", "page", "req/s", "p50 ms", "p99 ms", "errors", "/ ceiling"], changing_rows, left=3),
        "### Start-up, memory, new posts",
        ("First 200 on `/` is counted from the process spawn; Quire's first start parses every post (its post "
         "cache is empty), its restart reads the cache that start wrote. RSS and PSS are each worker's after the "
         "loads, in MB; RSS counts pages shared copy-on-write with the master in each worker, PSS "
         "(/proc/PID/smaps_rollup) splits them between their sharers. A new post is timed from its rename into "
         f"the folder to the first of {STREAK} home pages in a row that list it (so both workers do); p50 / p99 "
         "in ms. The last column is the most CPU that processes outside the benchmark took during any of the "
         "app's wrk runs: where it is high the machine was shared and that app's figures are low."),
        table(["posts", "app", "first 200 on / (s)", "restart (s)", "RSS per worker", "PSS per worker",
               "new post p50 / p99 ms", "others' CPU"], app_rows, left=2),
    ]
    if baseline_rows:
        parts += ["### Quire over the Flask-FlatPages baseline, req/s",
                  table(["posts", "page", "Quire / baseline"], baseline_rows, left=2)]
    if spread:
        parts.append(f"Quire's p99 at {sizes[-1]:,} posts over its p99 at {sizes[0]:,}: " + ", ".join(spread) + ".")
    return "\n\n".join(parts) + "\n"


def _commit(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"


def describe(settings: Settings) -> str:
    """Return the report's opening: when, on what, at which commit, under which settings."""
    commit = _commit(ROOT)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"## Quire benchmark, {stamp}\n\nCommit {commit}; {os.cpu_count()} cores, load average {load} at the "
            f"start; Python {sys.version.split()[0]}, gunicorn {version('gunicorn')}. Every app: "
            f"bench/gunicorn_conf.py (Quire's gunicorn.conf.py, access log off), 2 sync workers on 127.0.0.1; "
            f"`wrk -t{settings.threads} -c{settings.connections} -d{settings.seconds:g}s --timeout=30s --latency` "
            "per load (hot pages after 5 warm-up requests)."
            + (f" Quire (old) is the checkout at {settings.old} ({_commit(settings.old)})." if settings.old else ""))


def main() -> int:
    """Benchmark Quire against the Flask-FlatPages baseline and a pre-rendered ceiling; print the report."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--short", action="store_true",
                        help="CI mode: 100 and 1,000 posts, 2 s of wrk per load, 5 new-post trials")
    parser.add_argument("--sizes", type=lambda text: tuple(int(part) for part in text.split(",")),
                        help="post counts, comma-separated (default 100,1000,10000,100000; 100,1000 with --short)")
    parser.add_argument("--old", type=Path, metavar="DIR",
                        help="another checkout of Quire (e.g. `git worktree add DIR COMMIT`) measured beside this one")
    parser.add_argument("--posts-cache", type=Path, metavar="DIR",
                        help="keep the generated posts in DIR and reuse them next time (100,000 take minutes)")
    parser.add_argument("--startup", action="store_true",
                        help="start-up, memory and new posts only: Quire (and --old) alone, the crawl and hot pages "
                             "but no Zipf readers, edits, baseline or ceiling")
    parser.add_argument("--seconds", type=float, help="wrk's duration per page (default 10; 2 with --short)")
    parser.add_argument("--trials", type=int, help="new posts timed on Quire (default 20; 5 with --short)")
    arguments = parser.parse_args()
    wrk_binary()  # before generating anything, so a missing wrk costs no time
    trials = arguments.trials or (5 if arguments.short else 20)
    settings = Settings(sizes=arguments.sizes or ((100, 1000) if arguments.short else (100, 1000, 10000, 100000)),
                        seconds=arguments.seconds or (2 if arguments.short else 10), trials=trials,
                        # The baseline re-reads the folder on every request, so its trials are few and slow.
                        baseline_trials=min(trials, 5), old=arguments.old and arguments.old.resolve(),
                        posts_cache=arguments.posts_cache and arguments.posts_cache.resolve(),
                        startup=arguments.startup)
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
