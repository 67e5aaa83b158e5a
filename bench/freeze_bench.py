"""``blog freeze`` against the crawler it replaced, side by side on the same generated posts.

Run from the checkout: ``.venv/bin/python bench/freeze_bench.py [--sizes 1000 10000] [--compare main]``. For
each size: the old crawler (the commit before the parallel exporter, unpacked with ``git archive``) once, since
it has no incremental mode; then this checkout's exporter from a clean folder with a cold render cache, and
``--rounds`` times again with nothing changed and again after one post is edited (medians, with the range), and
with ``--full`` over a warm render cache (what an export after the server ran costs). An edit saves the post as
an editor does: the new text written beside it and renamed over it. ``--work DIR`` keeps the posts, exports,
render caches and unpacked commits there and uses them again in a later run (an export already there is not
made again from a clean folder); ``--incremental-only`` leaves out the ``--full`` runs. With ``--compare REV`` that commit's
exporter (unpacked the same way) runs beside it on the same posts, alternating, each with its own folder and
render cache, and the ratios are reported. Each run is a fresh ``flask blog freeze`` process timed by
/usr/bin/time (wall seconds, CPU seconds, peak RSS of the largest process: its forked children are waited for,
so they count). Each checkout's bytecode is written first, as an install has it. The report is printed and
written to bench/results/freeze.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.generate import generate  # noqa: E402
from bench import harness  # noqa: E402
from bench.harness import ROOT, table  # noqa: E402

BASELINE = "52b351cb07c3465711aa7cadb22d94f04ffd5c0b"  # main just before the parallel, incremental exporter
SUMMARY = re.compile(r": ([\d,]+) files, ([\d,]+) written \(([\d,]+) bytes\), ([\d,]+) unchanged, ([\d,]+) deleted, "
                     r"([\d,]+) pages rendered")
OLD_SUMMARY = re.compile(r"([\d,]+) files written to ")


@dataclass
class Run:
    """One export: what it was, how long it took, what it wrote, its peak memory and the machine's load."""

    label: str
    seconds: float
    spread: str  # the range of the seconds, for a median
    cpu: float  # user + system seconds of the command and its children: what a loaded machine does not distort
    peak_mb: float
    files: str
    written: str
    rendered: str
    load: float


def freeze(checkout: Path, posts: Path, out: Path, cache: Path, label: str, *options: str) -> Run:
    """Run one ``blog freeze`` in ``checkout`` and return its figures."""
    load = os.getloadavg()[0]
    # A render past its 2 s deadline on a busy machine is marked failed in the render cache, and the pages showing
    # it are then rendered again by every export: a generous deadline keeps the load out of the incremental figures.
    env = {**os.environ, "BLOG_POSTS_DIR": str(posts), "BLOG_CACHE_DIR": str(cache), "BLOG_WATCH": "off",
           "BLOG_URL": "https://blog.example.com", "PYTHONPATH": str(checkout), "BLOG_RENDER_SECONDS": "60"}
    command = ["/usr/bin/time", "-f", "TIME %e %U %S %M", sys.executable, "-m", "flask", "--app", "wsgi", "blog",
               "freeze", str(out), *options]
    result = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, check=False)
    timing = re.search(r"TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", result.stderr)
    if timing is None or result.returncode not in {0, 1}:
        raise SystemExit(f"{label} failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-3000:]}")
    found = SUMMARY.search(result.stdout)
    if found:
        files, written, _, _, _, rendered = found.groups()
    else:
        old = OLD_SUMMARY.search(result.stdout)
        files = written = rendered = old.group(1) if old else "?"
    return Run(label, float(timing.group(1)), "", float(timing.group(2)) + float(timing.group(3)),
               int(timing.group(4)) / 1024, files, written, rendered, load)


def edit_one(posts: Path, number: int) -> None:
    """Add a paragraph to one post in the middle of the site, saved as an editor saves (a new file renamed over it)."""
    names = sorted(path for path in posts.iterdir() if path.suffix == ".md")
    target = names[len(names) // 2]
    edited = target.with_name(f".{target.name}.edit")
    edited.write_text(target.read_text(encoding="utf-8") + f"\nOne more paragraph, added by edit {number}.\n",
                      encoding="utf-8")
    os.replace(edited, target)


def median(runs: list[Run], label: str) -> Run:
    """Return one run standing for ``runs`` of the same kind: median seconds, CPU seconds and peak memory."""
    last = runs[-1]
    seconds = [run.seconds for run in runs]
    return Run(f"{label} (median of {len(runs)})", statistics.median(seconds), f"{min(seconds):.1f}-{max(seconds):.1f}",
               statistics.median(run.cpu for run in runs), statistics.median(run.peak_mb for run in runs),
               last.files, last.written, last.rendered, statistics.median(run.load for run in runs))


def bench(size: int, work: Path, baseline: Path, compare: Path | None, skip_old: bool, rounds: int,
          incremental_only: bool) -> list[Run]:
    """Measure every run at one size: this checkout's exporter, and the compared one's beside it, alternating."""
    posts = work / f"posts-{size}"
    if not (work / f"posts-{size}.done").exists():
        generate(posts, size)
        (work / f"posts-{size}.done").touch()
    runs = []
    if not skip_old:
        runs.append(freeze(baseline, posts, work / f"old-{size}", work / f"cache-old-{size}", "old crawler, full"))
    checkouts = [("new", ROOT)] + ([("compared", compare)] if compare else [])
    for _, checkout in [("old", baseline), *checkouts]:
        harness.compile_once(checkout)
    for name, checkout in checkouts:
        if not (work / f"{name}-{size}").exists():  # kept from an earlier run with --work
            runs.append(freeze(checkout, posts, work / f"{name}-{size}", work / f"cache-{name}-{size}",
                               f"{name}, full (cold render cache)"))
    repeated: dict[str, list[Run]] = {}
    for round_ in range(rounds):
        for step in ("again, nothing changed", "again, one post edited"):
            if step.endswith("edited"):
                edit_one(posts, round_)
            for name, checkout in checkouts[::1 if round_ % 2 else -1]:  # each goes first every other round
                label = f"{name}, {step}"
                repeated.setdefault(label, []).append(
                    freeze(checkout, posts, work / f"{name}-{size}", work / f"cache-{name}-{size}", label))
    runs += [median(repeated[f"{name}, {step}"], f"{name}, {step}") for step in ("again, nothing changed",
             "again, one post edited") for name, _ in checkouts if f"{name}, {step}" in repeated]
    if incremental_only:
        return runs
    out, cache = work / f"new-{size}", work / f"cache-new-{size}"
    runs.append(freeze(ROOT, posts, out, cache, "new, --full (warm render cache)", "--full"))
    runs.append(freeze(ROOT, posts, out, cache, "new, --full --gzip (warm)", "--full", "--gzip"))
    return runs


def ratios(runs: list[Run]) -> list[tuple[str, str, str, str]]:
    """Return, per incremental step, the compared exporter's median seconds and CPU seconds over this one's."""
    found = {run.label.split(" (")[0]: run for run in runs}
    rows = []
    for step in ("again, nothing changed", "again, one post edited"):
        new, compared = found.get(f"new, {step}"), found.get(f"compared, {step}")
        if new and compared:
            rows.append((step, f"{compared.seconds / new.seconds:.2f}×", f"{compared.cpu / new.cpu:.2f}×",
                         f"{compared.peak_mb:.0f} → {new.peak_mb:.0f}"))
    return rows


def unpack(revision: str, folder: Path) -> Path:
    """Return ``folder`` holding the files of ``revision`` (unpacked with ``git archive`` unless there already)."""
    if not folder.exists():
        folder.mkdir()
        archive = subprocess.run(["git", "archive", revision], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def main() -> None:
    """Run the export benchmark and print (and save) its report."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--baseline", default=BASELINE, help="the commit whose exporter is the old one")
    parser.add_argument("--skip-old", action="store_true", help="leave out the old crawler")
    parser.add_argument("--compare", metavar="REV", help="a commit whose exporter runs beside this one (say, main)")
    parser.add_argument("--rounds", type=int, default=3, help="of the incremental runs, whose medians are reported")
    parser.add_argument("--work", type=Path, help="keep the posts, exports and caches here, and use them again")
    parser.add_argument("--incremental-only", action="store_true", help="leave out the --full runs")
    arguments = parser.parse_args()
    report = [f"# blog freeze, old crawler against the new exporter ({os.cpu_count()} CPUs)\n"]
    with tempfile.TemporaryDirectory(prefix="quire-freeze-bench-") as temporary:
        work = arguments.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        baseline = unpack(arguments.baseline, work / "baseline")
        compare = None
        if arguments.compare:
            compare = unpack(arguments.compare, work / f"compared-{arguments.compare}")
            report.append(f"\n\"compared\" is {arguments.compare}'s exporter, beside this checkout's (\"new\").\n")
        for size in arguments.sizes:
            runs = bench(size, work, baseline, compare, arguments.skip_old, arguments.rounds, arguments.incremental_only)
            rows = [(run.label, f"{run.seconds:.1f}" + (f" ({run.spread})" if run.spread else ""), f"{run.cpu:.1f}",
                     run.files, run.written, run.rendered, f"{run.peak_mb:.0f}", f"{run.load:.1f}") for run in runs]
            section = f"\n## {size:,} posts\n\n" + table(
                ("run", "seconds", "CPU seconds", "files", "written", "pages rendered", "peak MB", "load before"), rows, left=1)
            if compare:
                section += "\n\n" + table(("incremental step", "compared / new, seconds", "CPU seconds",
                                             "peak MB, compared → new"), ratios(runs), left=1)
            report.append(section)
            print(section, flush=True)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "freeze.md").write_text("".join(report) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
