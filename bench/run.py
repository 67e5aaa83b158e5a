"""Quire against the Flask-FlatPages baseline and a pre-rendered ceiling, side by side in one run.

``make bench`` runs the full mode (100, 1,000 and 10,000 posts); ``python bench/run.py --short`` the CI mode.
Every server runs on 127.0.0.1 under the same gunicorn settings (2 sync workers), one after another.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import generate  # noqa: E402
from bench.harness import ROOT, Load, Server, fetch, gunicorn, percentile, reusable_time_wait, table, wrk  # noqa: E402

PAGES = ("index", "category", "post")
COMMON = ["-w", "2", "-k", "sync"]


@dataclass
class Result:
    """What one app measured at one size."""

    app: str
    size: int
    cold_start: float = float("nan")
    rss_mb: float = float("nan")
    loads: dict[str, Load] = field(default_factory=dict)
    new_post_ms: list[float] = field(default_factory=list)
    failure: str = ""


def quire_urls(server: Server) -> dict[str, str]:
    """Return the index, first category and first post paths, as Quire's own index links them."""
    html = fetch(server.base + "/")[1].decode()
    post = re.search(r'href="(/posts/[^"]+)"', html).group(1)  # type: ignore[union-attr]
    category = re.search(r'href="(/category/[^"/]+/)"', html).group(1)  # type: ignore[union-attr]
    return {"index": "/", "category": category, "post": post}


def new_post_latency(server: Server, folder: Path, trials: int, url_of: Callable[[str], str]) -> list[float]:
    """Write posts atomically and time until every worker serves each one (10 answers in a row)."""
    timings = []
    for trial in range(trials):
        stem = f"2011-01-01-bench-new-{trial}"
        temporary = folder / f".{stem}.md.tmp"
        temporary.write_text(f"---\ntitle: New post {trial}\ndate: 2011-01-01\ncategories: [news]\n---\nFresh.\n",
                             encoding="utf-8")
        url = server.base + url_of(stem)
        started = time.perf_counter()
        os.rename(temporary, folder / f"{stem}.md")
        streak, first_of_streak = 0, 0.0
        while streak < 10:
            if time.perf_counter() - started > 10:
                timings.append(float("inf"))
                break
            if fetch(url, timeout=5)[0] == 200:
                if streak == 0:
                    first_of_streak = time.perf_counter()
                streak += 1
            else:
                streak = 0
                time.sleep(0.01)
        else:
            timings.append((first_of_streak - started) * 1000)
        (folder / f"{stem}.md").unlink()
        time.sleep(0.5)  # let the deletion be applied, so trials measure one change each
    return timings


def measure(result: Result, server: Server, urls: dict[str, str], seconds: float) -> None:
    """Warm each page, then load it with wrk; record cold start and RSS per worker."""
    result.cold_start = server.cold_start
    for page in PAGES:
        for _ in range(5):
            fetch(server.base + urls[page])
        result.loads[page] = wrk(server.base + urls[page], seconds)
    result.rss_mb = max(server.worker_rss_mb())


def run_size(size: int, seconds: float, trials: int) -> list[Result]:
    """Measure Quire, the baseline and the ceiling over ``size`` generated posts."""
    results = []
    with tempfile.TemporaryDirectory(prefix="quire-bench-") as scratch:
        posts = Path(scratch) / "posts"
        paths = generate(posts, size)
        ceiling_dir = Path(scratch) / "ceiling"
        ceiling_dir.mkdir()
        quire = Result("Quire", size)
        results.append(quire)
        try:
            env = {"BLOG_POSTS_DIR": str(posts), "BLOG_URL": "http://127.0.0.1"}
            with gunicorn(["-c", "gunicorn.conf.py", *COMMON, "wsgi:app"], env) as server:
                urls = quire_urls(server)
                manifest = {}
                for page, path in urls.items():
                    (ceiling_dir / page).write_bytes(fetch(server.base + path)[1])
                    manifest[path] = page
                (ceiling_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
                measure(quire, server, urls, seconds)
                quire.new_post_ms = new_post_latency(server, posts, trials, lambda stem: f"/posts/{stem[11:]}/")
        except (RuntimeError, AttributeError) as error:
            quire.failure = str(error).splitlines()[0]
            return results
        slug = urls["post"].strip("/").split("/")[-1]
        stem = next(path.stem for path in paths if path.stem.endswith("-" + slug))
        category = urls["category"].strip("/").split("/")[-1]
        baseline_urls = {"index": "/", "category": f"/category/{category}/", "post": f"/posts/{stem}/"}
        for name, arguments, env, page_urls, url_of in (
            ("Flask-FlatPages baseline", [*COMMON, "bench.baseline_app:app"], {"BENCH_POSTS_DIR": str(posts)},
             baseline_urls, lambda stem: f"/posts/{stem}/"),
            ("ceiling (pre-rendered)", [*COMMON, "bench.ceiling_app:app"], {"BENCH_CEILING_DIR": str(ceiling_dir)},
             urls, None),
        ):
            result = Result(name, size)
            results.append(result)
            try:
                with gunicorn(arguments, env, probe=page_urls["index"]) as server:
                    measure(result, server, page_urls, seconds)
                    if url_of is not None:
                        result.new_post_ms = new_post_latency(server, posts, min(trials, 5), url_of)
            except RuntimeError as error:
                result.failure = str(error).splitlines()[0]
    return results


def report(results: list[Result], seconds: float) -> str:
    """Return the Markdown report: per page loads, per app start-up and memory, and the ratios."""
    def number(value: float, digits: int = 0) -> str:
        return "–" if value != value else f"{value:,.{digits}f}"

    rows = []
    for result in results:
        if result.failure:
            rows.append([result.size, result.app, "failed", result.failure, "", "", ""])
            continue
        for page in PAGES:
            load = result.loads[page]
            rows.append([f"{result.size:,}", result.app, page, number(load.requests_per_second),
                         number(load.p50_ms, 2), number(load.p99_ms, 2), load.errors])
    loads = table(["posts", "app", "page", "req/s", "p50 ms", "p99 ms", "errors"], rows)
    start_rows = []
    for result in results:
        if result.failure:
            continue
        latency = result.new_post_ms
        finite = [value for value in latency if value != float("inf")]
        new_post = (f"{statistics.median(latency):.0f} / {percentile(latency, 0.99):.0f}"
                    + ("" if len(finite) == len(latency) else f" ({len(latency) - len(finite)} never seen)")
                    ) if latency else "–"
        start_rows.append([f"{result.size:,}", result.app, number(result.cold_start, 2), number(result.rss_mb, 1),
                           new_post])
    starts = table(["posts", "app", "first response s", "RSS MB / worker", "new post p50 / p99 ms"], start_rows)
    ratio_rows = []
    by_key = {(result.size, result.app): result for result in results if not result.failure}
    for size in sorted({result.size for result in results}):
        quire = by_key.get((size, "Quire"))
        baseline = by_key.get((size, "Flask-FlatPages baseline"))
        ceiling = by_key.get((size, "ceiling (pre-rendered)"))
        if quire is None:
            continue
        for page in PAGES:
            rate = quire.loads[page].requests_per_second
            ratio_rows.append([f"{size:,}", page,
                               f"{rate / baseline.loads[page].requests_per_second:.1f}×" if baseline else "–",
                               f"{rate / ceiling.loads[page].requests_per_second:.2f}×" if ceiling else "–"])
    ratios = table(["posts", "page", "Quire / baseline", "Quire / ceiling"], ratio_rows)
    sizes = sorted({result.size for result in results})
    spread = []
    for page in PAGES:
        low, high = by_key.get((sizes[0], "Quire")), by_key.get((sizes[-1], "Quire"))
        if low and high and len(sizes) > 1:
            spread.append(f"{page} {high.loads[page].p99_ms / low.loads[page].p99_ms:.2f}×")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"Measured {stamp} on {os.cpu_count()} cores; gunicorn -w 2 sync for every app; "
              f"wrk -t2 -c16 -d{seconds:g}s --latency per page.\n")
    footer = (f"\nQuire p99 at {sizes[-1]:,} posts over p99 at {sizes[0]:,}: " + ", ".join(spread) + "\n") if spread else ""
    return f"{header}\n{loads}\n\n{starts}\n\n{ratios}\n{footer}"


def main() -> None:
    """Run the benchmark and print (and save) the Markdown report."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--short", action="store_true", help="CI mode: 100 and 1,000 posts, 2 s per page")
    parser.add_argument("--sizes", type=lambda text: [int(part) for part in text.split(",")])
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--trials", type=int)
    arguments = parser.parse_args()
    sizes = arguments.sizes or ([100, 1000] if arguments.short else [100, 1000, 10000])
    seconds = arguments.seconds or (2 if arguments.short else 10)
    trials = arguments.trials or (5 if arguments.short else 20)
    results: list[Result] = []
    with reusable_time_wait():
        for size in sizes:
            print(f"benchmarking {size:,} posts…", file=sys.stderr, flush=True)
            results += run_size(size, seconds, trials)
    text = report(results, seconds)
    output = ROOT / "bench" / "results"
    output.mkdir(exist_ok=True)
    (output / "latest.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
