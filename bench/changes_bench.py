"""Hot pages while posts keep changing, in process: two checkouts side by side.

Run from the checkout: ``.venv/bin/python bench/changes_bench.py --posts 10000 --before /path/to/old/checkout``.
Each checkout loads the same generated site in a child process, caches a set of hot pages (the home page,
``--hot`` post pages, a few tag and category pages, the archive), then ``--changes`` times edits one post
(a new title, as an author saving a file does) and asks for every hot page again. It prints the time per hot
request (median, p99), how many hot pages each change re-rendered, and what a change costs the worker.
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
import json, os, random, re, sys, time
sys.path.insert(0, os.environ["CHECKOUT"])
from blog import create_app
app = create_app({"BLOG_WATCH": "off", "BLOG_CACHE_DIR": "off"})
store = app.extensions["quire"]
cache = app.extensions["quire.cache"]
snapshot = store.snapshot
rng = random.Random(11)
posts = list(snapshot.posts)
hot = ["/", "/archive/", *(post.url for post in rng.sample(posts, int(os.environ["HOT"])))]
hot += [f"/tag/{slug}/" for slug in list(snapshot.tags)[:5]] + [f"/category/{slug}/" for slug in list(snapshot.categories)[:3]]
client = app.test_client()
for url in hot:
    assert client.get(url).status_code == 200, url
times, rendered, change_ms = [], [], []
root = store.pages.root
for number in range(int(os.environ["CHANGES"])):
    post = rng.choice(posts)
    path = os.path.join(root, post.source)
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"(?m)^title: .*$", f"title: Edited {number}", text, count=1)
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(path + ".tmp", path)
    started = time.perf_counter()
    store.refresh([post.source])
    client.get("/robots.txt")  # the response cache catches up with the change here
    change_ms.append((time.perf_counter() - started) * 1000)
    kept = {key[0] for key in cache._entries}
    rendered.append(sum(url not in kept for url in hot))
    for url in hot:
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    posts = list(store.snapshot.posts)
print(json.dumps({"times": times, "rendered": rendered, "change": change_ms, "hot": len(hot)}))
"""


def run(checkout: Path, site: Path, hot: int, changes: int) -> dict[str, list[float]]:
    """Return one checkout's per-request times (ms), hot pages re-rendered per change and change costs (ms)."""
    return run_checkout(CHILD, checkout, site, HOT=str(hot), CHANGES=str(changes))


def main() -> None:
    """Time hot pages under a stream of edits for this checkout and, with --before, another, side by side."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--hot", type=int, default=200, help="post pages among the hot pages")
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--before", type=Path, help="another checkout (e.g. a worktree of the old commit)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quire-changes-") as folder:
        site = Path(folder)
        generate(site / "posts", arguments.posts)
        checkouts = [("before", arguments.before)] if arguments.before else []
        checkouts.append(("after", ROOT))
        rows = []
        for name, checkout in checkouts:
            found = run(checkout, site, arguments.hot, arguments.changes)
            rows.append([name, found["hot"], f"{percentile(found['times'], 0.5):.3f}",
                         f"{percentile(found['times'], 0.99):.2f}",
                         f"{percentile(found['rendered'], 0.5):.0f} (max {max(found['rendered'])})",
                         f"{percentile(found['change'], 0.5):.1f}"])
        print(f"{arguments.posts} posts, {arguments.changes} edits, every hot page asked for after each")
        print(table(["checkout", "hot pages", "hot request p50 ms", "p99 ms", "hot pages re-rendered per edit",
                     "edit, refresh to cache caught up, ms"], rows))


if __name__ == "__main__":
    main()
