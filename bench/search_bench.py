"""Search over 10,000 generated posts: index build time and memory, query latency (median, p99), one-edit resync.

Run from the checkout: ``.venv/bin/python bench/search_bench.py [--posts 10000] [--queries 1000]``.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blog import create_app, search  # noqa: E402

SYLLABLES = "ka ri to mo ne sa lu vi de po ga te shi ra no bu ke mi zo ha".split()
TECH = ("python generator iterator yield lazy memory cache server request response thread process worker socket "
        "queue database index query search ranking token phrase prefix snippet markdown template feed atom rss "
        "sitemap robots canonical schema test fixture benchmark latency deploy nginx gunicorn flask jinja sqlite "
        "unicode escape header cookie session asset image cover author archive draft publish watch snapshot").split()
VOCABULARY_SIZE = 20_000


def vocabulary(rng: random.Random) -> list[str]:
    """Return made-up words, most frequent first: a few technical words, then generated ones."""
    words = dict.fromkeys(TECH)
    while len(words) < VOCABULARY_SIZE:
        words["".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))] = None
    return list(words)


def rss_bytes() -> int:
    """Return this process's resident memory in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def generate(folder: Path, count: int, words: list[str], seed: int = 7) -> None:
    """Write ``count`` posts of a few hundred words each (Zipf-distributed, as in real text) into ``folder``."""
    rng = random.Random(seed)
    weights = list(itertools.accumulate(1 / rank for rank in range(1, len(words) + 1)))
    for number in range(count):
        day = 1 + number % 28
        month = 1 + (number // 28) % 12
        year = 2010 + number // (28 * 12)
        title = " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(3, 7))).capitalize()
        tags = ", ".join(sorted(set(rng.choices(TECH, k=3))))
        paragraphs = [" ".join(rng.choices(words, cum_weights=weights, k=rng.randint(40, 80))).capitalize() + "."
                      for _ in range(rng.randint(3, 8))]
        text = (f"---\ntitle: {title} {number}\ndate: {year}-{month:02d}-{day:02d}\ncategories: [{rng.choice(TECH)}]\n"
                f"tags: [{tags}]\n---\n\n" + "\n\n".join(paragraphs) + "\n")
        (folder / f"{year}-{month:02d}-{day:02d}-post-{number}.md").write_text(text, encoding="utf-8")


def hostile_queries(words: list[str]) -> dict[str, str]:
    """Return the costliest queries a reader can type, by what makes them costly."""
    letters = "tasmirokdpgnbhlvecz"
    return {
        "one word": words[0],
        "16 one-letter prefixes (t* a* s* ...)": " ".join(f"{letter}*" for letter in letters[:16]),
        "16 two-letter prefixes (ka* ri* ...)": " ".join(f"{syllable}*" for syllable in SYLLABLES[:16]),
        "16 common words": " ".join(words[:16]),
        "16 words no post has together": " ".join(words[:8] + words[-8:]),
    }


def compare_bounds(run: Callable[[str], object], queries: dict[str, str]) -> dict[str, tuple[float, float]]:
    """Return each query's median time with the query bounds as served and with them lifted, runs interleaved."""
    bounds = {"MAX_QUERY_TERMS": 16, "MAX_PREFIX_TERMS": 16, "MIN_PREFIX_CHARS": 1}  # the limits before the bound
    served = {name: getattr(search, name) for name in bounds}
    figures = {}
    for label, query in queries.items():
        timings: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(5):
            for bounded in (True, False):
                for name, value in (served if bounded else bounds).items():
                    setattr(search, name, value)
                start = time.perf_counter()
                run(query)
                timings[bounded].append((time.perf_counter() - start) * 1000)
        figures[label] = (statistics.median(timings[True]), statistics.median(timings[False]))
    for name, value in served.items():
        setattr(search, name, value)
    return figures


def latencies(run: Callable[[str], object], queries: list[str]) -> tuple[float, float]:
    """Return the median and 99th percentile of running each query once, in milliseconds."""
    timings = []
    for query in queries:
        start = time.perf_counter()
        run(query)
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    return statistics.median(timings), timings[min(len(timings) - 1, int(len(timings) * 0.99))]


def main() -> None:
    """Generate the posts, build the index, time the queries and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        posts = Path(folder)
        words = vocabulary(random.Random(3))
        generate(posts, options.posts, words)
        app = create_app({"BLOG_POSTS_DIR": folder, "BLOG_WATCH": "off", "BLOG_RESPONSE_CACHE_ENTRIES": "0",
                          "BLOG_URL": "https://blog.example.com", "BLOG_CACHE_DIR": "off"})
        store, index = app.extensions["quire"], app.extensions["quire.search"]
        rss_before = rss_bytes()
        start = time.perf_counter()
        index.sync(store.snapshot)
        build = time.perf_counter() - start
        rss_after = rss_bytes()
        pages, page_size = (index._connection().execute(f"PRAGMA {name}").fetchone()[0]
                            for name in ("page_count", "page_size"))

        # Words drawn from the common, middling and rare parts of the vocabulary alike.
        rng = random.Random(11)
        queries = []
        for number in range(options.queries):
            first, second = (words[int(len(words) ** rng.random()) - 1] for _ in range(2))
            queries.append([first, f"{first} {second}", f'"{first} {second}"', f"{first[:3]}*",
                            f"{first} {second[:3]}*"][number % 5])
        with app.test_request_context():
            median, p99 = latencies(lambda query: index.search(query, 1, 10), queries)
        client = app.test_client()
        page_median, page_p99 = latencies(lambda query: client.get("/search", query_string={"q": query}), queries)
        hostile = compare_bounds(lambda q: client.get("/search", query_string={"q": q}), hostile_queries(words))

        victim = next(posts.glob("*-post-5000.md"))
        victim.write_text(victim.read_text(encoding="utf-8") + "\nA freshly added zeppelin.\n", encoding="utf-8")
        store.refresh([victim.name])
        start = time.perf_counter()
        touched = index.sync(store.snapshot)
        resync = time.perf_counter() - start
        with app.test_request_context():
            assert [hit.post.source for hit in index.search("zeppelin", 1, 10).hits] == [victim.name]

    print(f"posts: {options.posts}, queries: {options.queries} (words, AND pairs, phrases, prefixes)")
    print(f"index build (first search): {build:.2f} s; one edited post re-indexed in {resync * 1000:.1f} ms "
          f"({len(touched)} post)")
    print(f"index memory: {(rss_after - rss_before) / 2**20:.0f} MB RSS growth; "
          f"SQLite database {pages * page_size / 2**20:.0f} MB")
    print(f"query (index, top 10 with snippets): median {median:.2f} ms, p99 {p99:.2f} ms")
    print(f"GET /search (uncached, rendered page): median {page_median:.2f} ms, p99 {page_p99:.2f} ms")
    print("GET /search of the costliest inputs, bounded (as served) vs unbounded (16 terms, any prefix), "
          "interleaved, median of 5:")
    for name, (bounded, unbounded) in hostile.items():
        print(f"  {name}: {bounded:.1f} ms vs {unbounded:.1f} ms ({unbounded / bounded:.1f}x)")


if __name__ == "__main__":
    main()
