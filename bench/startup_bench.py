"""Start-up at 100,000 posts: another checkout of Quire against this one, alternated round by round.

For each round and checkout, over one copy of the generated posts (their files in the OS's page cache, as
after any recent read; reading 100,000 cold files from disk is the disk's time, not Quire's):

1. a **cold start**, with an empty post cache, timed from the spawn to the first 200 of ``/``;
2. serving: the hot pages and a sample of posts (the sitemap's, which lists half of them), so the workers'
   memory is what serving makes it, then each worker's PSS and the whole server's (every process of its
   group: master, workers, render children, detached fillers), then new posts timed until every worker
   lists them (as ``bench/run.py`` does);
3. a **restart** over the post cache the first start wrote, timed the same way, then the same requests and PSS
   (and with ``--restarts N``, N - 1 more restarts, timed alone);
4. a **restart after an edit made while the server was down** (the home page's newest post retitled), timed
   to the first 200 and to the new title showing on the home page from every worker.

The order of the checkouts alternates between rounds; the report gives each figure's median and the ratio
of this checkout's to the other's. Both checkouts' bytecode is written first, as an installed Quire has it. Run
it under the benchmark lock:
``flock /work/.bench.lock python bench/startup_bench.py --old DIR --posts DIR``.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness  # noqa: E402
from bench.harness import ROOT, ServerFailed, fetch, free_port, interrupt_on_sigterm, serve, table  # noqa: E402
from bench.run import link_paths, new_post_latency, post_paths, until_consistent  # noqa: E402

COLD_START_TIMEOUT = 240.0  # a cold start at 100,000 posts on a busy 2-core machine takes a minute or more
CACHE_WRITTEN_TIMEOUT = 180.0
HOT_REQUESTS = 100
SAMPLE_POSTS = 1000
EDIT_TIMEOUT = 30.0
FIGURES = ("cold start", "restart", "restart after an edit", "edit showing after the restart", "PSS per worker",
           "PSS of the whole server", "PSS per worker after a restart", "PSS of the whole server after a restart",
           "new post on every worker, p50", "new post on every worker, p99")


def measure(root: Path, posts: Path, scratch: Path, label: str, trials: int,
            restarts: int = 1) -> dict[str, list[float]]:
    """Run the cold start, serving, restart and restart after an edit for the checkout at ``root``."""
    port = free_port()
    cache = scratch / f"cache-{label}"
    env = {"BLOG_POSTS_DIR": str(posts), "BLOG_URL": f"http://127.0.0.1:{port}", "BLOG_CACHE_DIR": str(cache)}
    found: dict[str, list[float]] = {}
    harness.START_TIMEOUT = COLD_START_TIMEOUT
    with serve("wsgi:app", env, port=port, root=root) as server:
        found["cold start"] = [server.cold_start]
        paths = link_paths(fetch(server.base + "/")[1].decode("utf-8", "replace"))
        sample = random.Random(15).sample(post_paths(server), SAMPLE_POSTS)
        found["PSS per worker"] = _serve_and_weigh(server, paths, sample)
        found["PSS of the whole server"] = [server.total_pss_mb()]
        latencies = sorted(new_post_latency(server, posts, trials))
        found["new post on every worker, p50"] = [statistics.median(latencies)]
        found["new post on every worker, p99"] = [latencies[-1]]  # of ten or twenty trials: the slowest
        _wait_for_cache(cache)
    with serve("wsgi:app", env, port=port, root=root) as server:
        found["restart"] = [server.cold_start]
        found["PSS per worker after a restart"] = _serve_and_weigh(server, paths, sample)
        found["PSS of the whole server after a restart"] = [server.total_pss_mb()]
    for _ in range(restarts - 1):  # restarts alone, for a steadier median of the one figure a restart gives
        with serve("wsgi:app", env, port=port, root=root) as server:
            found["restart"].append(server.cold_start)
    title = f"Edited while down {secrets.token_hex(4)}"
    slug = paths["post"].strip("/").rsplit("/", 1)[-1]
    _retitle(next(posts.glob(f"????-??-??-{slug}.md")), title)
    with serve("wsgi:app", env, port=port, root=root) as server:
        started = time.perf_counter() - server.cold_start  # the spawn, as the harness timed it
        found["restart after an edit"] = [server.cold_start]
        found["edit showing after the restart"] = [
            until_consistent(server.base + "/", title.encode(), True, started, EDIT_TIMEOUT)]
    return found


def _serve_and_weigh(server: harness.Server, paths: dict[str, str], sample: list[str]) -> list[float]:
    """Request the hot pages and a sample of posts, then return each worker's PSS in MB."""
    for path in paths.values():
        for _ in range(HOT_REQUESTS):
            fetch(server.base + path, timeout=60)
    for path in sample:
        fetch(server.base + path, timeout=60)
    return server.worker_pss_mb()


def _wait_for_cache(cache: Path) -> None:
    """Wait until the start's post cache is written: stopping the server earlier kills its detached writer."""
    deadline = time.monotonic() + CACHE_WRITTEN_TIMEOUT
    while not any(cache.glob("posts-*.pickle")):
        if time.monotonic() > deadline:
            raise ServerFailed(f"no post cache in {cache} after {CACHE_WRITTEN_TIMEOUT:.0f} s")
        time.sleep(0.2)


def _retitle(path: Path, title: str) -> None:
    """Give a post a new title by replacing its file (never writing into it: the copy's files are hard links)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    lines = [f"title: {title}" if line.startswith("title:") else line for line in lines]
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("\n".join(lines), encoding="utf-8")
    os.rename(temporary, path)


def _commit(root: Path) -> str:
    return subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"], capture_output=True,
                          text=True).stdout.strip() or "unknown commit"


def main() -> int:
    """Measure start-up, memory and new posts of another checkout and this one, alternated; print the medians."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--old", type=Path, required=True, help="the other checkout (e.g. a worktree of main)")
    parser.add_argument("--posts", type=Path, required=True, help="a folder of generated posts (copied, never changed)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=10, help="new posts timed per start")
    parser.add_argument("--restarts", type=int, default=1, help="restarts timed per round (the first one serves too)")
    arguments = parser.parse_args()
    checkouts = {"old": arguments.old.resolve(), "new": ROOT}
    for checkout in checkouts.values():  # as installed: no start compiles Quire from source first
        harness.compile_once(checkout)
    runs: dict[str, dict[str, list[float]]] = {name: {figure: [] for figure in FIGURES} for name in checkouts}
    load = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    count = sum(1 for _ in arguments.posts.glob("*.md"))
    with tempfile.TemporaryDirectory(prefix="quire-startup-") as scratch_name:
        scratch = Path(scratch_name)
        posts = scratch / "posts"
        subprocess.run(["cp", "-al", str(arguments.posts), str(posts)], check=True)
        for path in posts.glob("*.md"):  # into the OS's page cache, for both checkouts alike
            path.read_bytes()
        with interrupt_on_sigterm():  # every server started is stopped on the way out
            for round_number in range(arguments.rounds):
                order = list(checkouts) if round_number % 2 == 0 else list(reversed(checkouts))
                for name in order:
                    print(f"startup_bench: round {round_number + 1}, {name}…", file=sys.stderr, flush=True)
                    found = measure(checkouts[name], posts, scratch, f"{name}-{round_number}", arguments.trials,
                                    arguments.restarts)
                    for figure, values in found.items():
                        runs[name][figure] += values
                    print("  " + "; ".join(f"{figure} {', '.join(f'{value:.2f}' for value in values)}"
                                           for figure, values in found.items()), file=sys.stderr, flush=True)
    rows = []
    for figure in FIGURES:
        old, new = (statistics.median(runs[name][figure]) for name in checkouts)
        unit = "MB" if figure.startswith("PSS") else "ms" if figure.startswith("new post") else "s"
        rows.append([figure, f"{old:,.2f} {unit}", f"{new:,.2f} {unit}", f"{new / old:.2f}×" if old else "–",
                     f"{min(runs['new'][figure]):,.2f}–{max(runs['new'][figure]):,.2f}"])
    print(f"## Start-up, {started}\n\n{count:,} posts ({arguments.posts}); old "
          f"{checkouts['old']} ({_commit(checkouts['old'])}), new {ROOT} ({_commit(ROOT)}); {arguments.rounds} "
          f"rounds alternated; load average {', '.join(f'{value:.2f}' for value in load)} at the start.\n")
    print(table(["", "old (median)", "new (median)", "new / old", "new, range"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
