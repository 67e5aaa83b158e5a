"""Cold post views in process: each post's page asked for once, for two checkouts side by side.

Run from the checkout: ``.venv/bin/python bench/cold_views.py --posts 10000 --before /path/to/old/checkout``.
Each checkout loads the same generated site in a child process of its own and answers ``--views`` post pages
that no response cache holds yet, twice over:

- with nothing cached (no cache folder: each body rendered from Markdown in the render child, then the page);
- with the bodies in the render cache on disk, as a server's background filler leaves them soon after start
  and as a crawler then meets them: a first process renders the shown posts into a fresh cache folder, and a
  second one, which has nothing in memory and no finished page on disk, is timed.

It prints the median and p99 of the time per view in each case and of ``related()`` alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import generate  # noqa: E402
from bench.harness import percentile, run_checkout, table  # noqa: E402

CHILD = r"""
import json, os, random, sys, time
import click
sys.path.insert(0, os.environ["CHECKOUT"])
from blog import create_app
from blog.content import derived
cache = os.environ.get("CACHE", "off")
with click.Context(click.Command("bench")):  # as a `flask blog` command: no background fillers
    app = create_app({"BLOG_WATCH": "off", "BLOG_CACHE_DIR": cache})
store = app.extensions["quire"]
posts = list(store.snapshot.posts)
random.Random(7).shuffle(posts)
shown = posts[:int(os.environ["VIEWS"])]
if os.environ.get("FILL"):  # the render cache's filler's work, for these posts only
    for post in shown:
        store._render_into_cache(post)
    print("{}")
    sys.exit()
client = app.test_client()
client.get(shown[-1].url)  # templates compiled, first-request work done
views = []
for post in shown[:-1]:
    started = time.perf_counter()
    response = client.get(post.url)
    views.append((time.perf_counter() - started) * 1000)
    assert response.status_code == 200, (post.url, response.status_code)
snapshot = store.snapshot
related = []
for post in shown[:-1] if cache == "off" else ():  # related() alone: once, in the run with nothing cached
    snapshot.__dict__.pop("_derived", None)
    started = time.perf_counter()
    derived.related(snapshot, post, 3)
    related.append((time.perf_counter() - started) * 1000)
print(json.dumps({"views": views, "related": related}))
"""


def run(checkout: Path, site: Path, views: int) -> dict[str, list[float]]:
    """Return the per-view times (ms) one checkout gives for the site, uncached and filled, and related()'s."""
    bare = run_checkout(CHILD, checkout, site, VIEWS=str(views + 1))
    with tempfile.TemporaryDirectory(prefix="quire-cold-cache-") as cache:
        run_checkout(CHILD, checkout, site, VIEWS=str(views + 1), CACHE=cache, FILL="1")
        filled = run_checkout(CHILD, checkout, site, VIEWS=str(views + 1), CACHE=cache)
    return {"views": bare["views"], "filled": filled["views"], "related": bare["related"]}


def main() -> None:
    """Time cold post views of this checkout and, with --before, of another one, side by side."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--views", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the checkouts this many times")
    parser.add_argument("--before", type=Path, help="another checkout (e.g. a worktree of the old commit)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quire-cold-") as folder:
        site = Path(folder)
        generate(site / "posts", arguments.posts)
        checkouts = [("before", arguments.before)] if arguments.before else []
        checkouts.append(("after", ROOT))
        results: dict[str, dict[str, list[float]]] = {name: {"views": [], "filled": [], "related": []}
                                                      for name, _ in checkouts}
        for _ in range(arguments.rounds):
            for name, checkout in checkouts:
                for kind, values in run(checkout, site, arguments.views).items():
                    results[name][kind] += values
        rows = []
        for name, _ in checkouts:
            found = results[name]
            rows.append([name, *(f"{percentile(found[kind], fraction):.2f}" for kind in ("views", "filled")
                                 for fraction in (0.5, 0.99)),
                         f"{percentile(found['related'], 0.5):.3f}", f"{percentile(found['related'], 0.99):.3f}"])
        print(f"{arguments.posts} posts, {arguments.views} cold post views per round, {arguments.rounds} round(s)")
        print(table(["checkout", "view p50 ms", "view p99 ms", "bodies cached: view p50 ms", "p99 ms",
                     "related() p50 ms", "related() p99 ms"], rows))


if __name__ == "__main__":
    main()
