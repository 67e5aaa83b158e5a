"""The crawl and Zipf readers on a site whose page cache is filled, beside the cold crawl and the ceiling.

Run from the checkout: ``.venv/bin/python bench/page_cache_bench.py --posts 10000 --rounds 3``. First Quire
answers every post once on an empty cache folder (those bytes are what the ceiling serves, and that folder's
page cache is then full). Each round then crawls every post once on a first start over an empty cache
folder (cold: each page rendered), crawls and reads by Zipf popularity after a restart over the full folder
(memory empty, disk full, as after a deploy once the filler is done), and drives the pre-rendered ceiling
with the same crawl and readers. ``--old DIR`` measures another checkout the same way in each round (its own
filled folder, made first). Rounds alternate them, so a busy moment of the shared machine costs each; the
report gives each figure's median over the rounds, its ratio to the ceiling's median, and the page cache's
bytes per post on disk.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ROOT, Load, fetch, free_port, interrupt_on_sigterm, serve, table, wrk, wrk_binary  # noqa: E402
from bench.run import OLD, QUIRE, Settings, ask_every_post, generated_posts, post_paths, save_for_ceiling, write_url_files  # noqa: E402

LOADS = (("crawl", "cold"), ("crawl", "filled"), ("zipf", "filled"))


def drive(base: str, files: dict[str, Path], mode: str, seconds: float) -> Load:
    """Run one load (the crawl, each post once, or Zipf readers) for ``seconds``; wait out what wrk left queued."""
    load = wrk(base + "/", seconds, paths=files[mode], once=mode == "crawl")
    fetch(base + "/", timeout=60)
    return load


def disk_bytes(folder: Path) -> tuple[int, int, int]:
    """Return the number of entries under ``folder``, their bytes, and the bytes they take on disk (whole blocks)."""
    count = size = blocks = 0
    for root, _, names in os.walk(folder):
        for name in names:
            if name.endswith(".page"):
                status = os.stat(os.path.join(root, name))
                count, size, blocks = count + 1, size + status.st_size, blocks + status.st_blocks * 512
    return count, size, blocks


def main() -> int:
    """Measure the crawl cold and on a filled page cache, and Zipf readers, beside the ceiling (and --old)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--posts", type=int, default=10_000, help="generated posts (default 10,000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="wrk's duration per load (default 10): a crawl not done by then is measured as far as it got")
    parser.add_argument("--posts-cache", type=Path, default=Path(tempfile.gettempdir()) / "quire-bench-posts",
                        help="where generated posts are kept and reused (default $TMPDIR/quire-bench-posts)")
    parser.add_argument("--old", type=Path, metavar="DIR",
                        help="another checkout of Quire (e.g. `git worktree add DIR COMMIT`), measured in each round too")
    arguments = parser.parse_args()
    wrk_binary()
    settings = Settings(sizes=(arguments.posts,), seconds=arguments.seconds, trials=0, baseline_trials=0,
                        posts_cache=arguments.posts_cache.resolve())
    checkouts = {QUIRE: ROOT, **({OLD: arguments.old.resolve()} if arguments.old else {})}
    figures: dict[tuple[str, str, str], list[Load]] = {}
    disk: dict[str, tuple[int, int, int]] = {}
    with interrupt_on_sigterm(), tempfile.TemporaryDirectory(prefix="quire-page-cache-") as scratch_name:
        scratch = Path(scratch_name)
        posts, _ = generated_posts(arguments.posts, scratch, settings)
        ceiling = scratch / "ceiling"
        ceiling.mkdir()
        # BLOG_URL is in every page: each checkout's restarts must have the port its filled folder was made on.
        filled = {name: (scratch / f"cache-filled-{number}", free_port()) for number, name in enumerate(checkouts)}

        def quire(name: str, cache: Path | None = None) -> Any:
            folder, port = (cache, free_port()) if cache is not None else filled[name]
            return serve("wsgi:app", {"BLOG_POSTS_DIR": str(posts), "BLOG_URL": f"http://127.0.0.1:{port}",
                                      "BLOG_CACHE_DIR": str(folder)}, port=port, root=checkouts[name])

        listed: list[str] = []
        files: dict[str, Path] = {}
        for name in checkouts:  # every post asked for once: a full page cache (and, from this one, the ceiling's bytes)
            with quire(name) as server:
                if not listed:
                    listed = post_paths(server)
                    files = write_url_files(scratch, listed)
                if name == QUIRE:
                    save_for_ceiling(server, ceiling, {}, listed)
                else:
                    ask_every_post(server, listed)
            disk[name] = disk_bytes(filled[name][0] / "pages")
        for round_number in range(arguments.rounds):
            print(f"bench: round {round_number + 1} of {arguments.rounds}…", file=sys.stderr, flush=True)
            for name in checkouts:
                with quire(name, scratch / f"cache-{secrets.token_hex(4)}") as server:  # a first start: caches empty
                    figures.setdefault((name, "crawl", "cold"), []).append(drive(server.base, files, "crawl",
                                                                                 arguments.seconds))
                with quire(name) as server:  # a restart: memory empty, the page cache full
                    for mode in ("crawl", "zipf"):
                        figures.setdefault((name, mode, "filled"), []).append(drive(server.base, files, mode,
                                                                                    arguments.seconds))
            with serve("bench.ceiling_app:app", {"BENCH_CEILING_DIR": str(ceiling)}, probe=listed[0]) as server:
                for mode in ("crawl", "zipf"):
                    figures.setdefault(("ceiling", mode, ""), []).append(drive(server.base, files, mode,
                                                                               arguments.seconds))
    rows = []
    for app, mode, state in (*((name, mode, state) for name in reversed(checkouts) for mode, state in LOADS),
                             ("ceiling", "crawl", ""), ("ceiling", "zipf", "")):
        loads = figures[(app, mode, state)]
        rate = statistics.median(load.requests_per_second for load in loads)
        top = statistics.median(load.requests_per_second for load in figures[("ceiling", mode, "")])
        rows.append([app, mode, state or "–", f"{rate:,.0f}",
                     " / ".join(f"{load.requests_per_second:,.0f}" for load in loads),
                     f"{statistics.median(load.p50_ms for load in loads):,.2f}",
                     f"{statistics.median(load.p99_ms for load in loads):,.2f}",
                     f"{sum(load.errors for load in loads):,}", f"{rate / top:.2f}×" if app != "ceiling" else ""])
    print(table(["app", "load", "caches", "req/s (median)", "each round", "p50 ms", "p99 ms", "errors", "/ ceiling"],
                rows, left=3))
    print(f"\n{arguments.posts:,} posts, {arguments.rounds} rounds, wrk -c16 -d{arguments.seconds:g}s per load "
          "(-t2; the crawl -t1); page cache "
          + "; ".join(f"{name}: {count:,} entries, {size / max(count, 1):,.0f} bytes per post, "
                      f"{blocks / max(count, 1):,.0f} on disk in whole blocks ({blocks / 2**20:,.1f} MB)"
                      for name, (count, size, blocks) in disk.items()) + ".")
    return 0


if __name__ == "__main__":
    sys.exit(main())
