"""Live faults under load: gunicorn on loopback serving a posts folder that another process keeps breaking.

A pool of client threads requests index, post, category, tag, feed and search pages while a mutator process
creates, edits (in place and by atomic rename), truncates, half-writes, deletes, chmod-000s posts and renames
their folders. Afterwards slowloris clients hold connections open, one worker is killed, and the master is
sent HUP (graceful reload). Prints its
figures and exits non-zero if any guarantee broke: a 5xx, a half-written post's text in a response, a change
not visible within 1 s of settling, a surviving post unreachable at the end, a worker crash in the log, or a
worker's memory past the bound.

    python bench/faults.py              # 60 s of faults
    python bench/faults.py --seconds 30 # CI's short mode
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
POSTS = 24
FOLDERS = ("a", "b", "c")
VISIBLE_WITHIN = 1.0
MEMORY_BOUND_MB = 400
_TOKEN = re.compile(r"(HALF|END|CUT)-([0-9a-f]{12})")


def free_port() -> int:
    """Return a free TCP port on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post_text(slug: str, token: str, *, title: str | None = None) -> str:
    """Return a post whose body names ``token`` at its start (HALF-) and at its end (END-)."""
    filler = " ".join(f"word{n}" for n in range(200))
    return (f"---\ntitle: {title or slug}\ndate: 2024-01-01\ncategories: [c1]\ntags: [t1]\n---\n\n"
            f"HALF-{token} begins this post. {filler}\n\nIt ends here: END-{token}\n")


def fetch(port: int, path: str, timeout: float = 10.0) -> tuple[int, str]:
    """Return (status, body) of one GET on a fresh connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def partial_tokens(body: str) -> list[str]:
    """Return tokens whose first half shows without their end, or whose cut front matter shows at all."""
    seen: dict[str, set[str]] = {}
    for kind, token in _TOKEN.findall(body):
        seen.setdefault(token, set()).add(kind)
    return [token for token, kinds in seen.items() if "CUT" in kinds or ("HALF" in kinds and "END" not in kinds)]


# The mutator ------------------------------------------------------------------------------------------

class Mutator:
    """Breaks the posts folder in every way an author's tools do, checking each change shows within 1 s."""

    def __init__(self, posts: Path, port: int, seconds: float, seed: int):
        self.posts = posts
        self.port = port
        self.seconds = seconds
        self.random = random.Random(seed)
        self.where: dict[str, Path] = {}  # slug -> file
        self.token: dict[str, str] = {}  # slug -> token its page must show
        self.results: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.late: list[str] = []
        self.partial: list[str] = []

    def seed(self) -> None:
        """Write the first posts, spread over folders."""
        for number in range(POSTS):
            slug = f"p{number}"
            folder = self.posts / FOLDERS[number % len(FOLDERS)]
            folder.mkdir(exist_ok=True)
            self._write_atomic(slug, folder / f"2024-01-01-{slug}.md")

    def _new_token(self) -> str:
        return "%012x" % self.random.getrandbits(48)

    def _write_atomic(self, slug: str, path: Path) -> None:
        token = self._new_token()
        temporary = path.parent / f".{path.name}.tmp"
        temporary.write_text(post_text(slug, token))
        os.replace(temporary, path)
        self.where[slug], self.token[slug] = path, token

    def _expect(self, what: str, slug: str, present: bool) -> None:
        """Time until the change shows, then until three requests in a row (likely different workers) agree."""
        started = time.monotonic()
        path = f"/posts/{slug}/"
        streak = 0
        first_seen = None
        while time.monotonic() - started < 10:
            asked = time.monotonic()
            status, body = fetch(self.port, path)
            ok = (status == 200 and f"END-{self.token[slug]}" in body) if present else status == 404
            streak = streak + 1 if ok else 0
            if streak == 1:
                first_seen = asked  # the response reflected the change when it was asked for
            if streak == 3:
                break
            time.sleep(0.01)
        took = (first_seen if streak == 3 and first_seen is not None else time.monotonic()) - started
        self.latencies.append(took)
        self.results[what] += 1
        if took > VISIBLE_WITHIN:
            self.late.append(f"{what} {slug}: {took:.2f} s")

    def run(self) -> dict[str, object]:
        """Apply random faults until the time is up; return the figures."""
        deadline = time.monotonic() + self.seconds
        operations = [self.create, self.edit_in_place, self.edit_by_rename, self.truncate, self.cut_front_matter,
                      self.pause_mid_write, self.delete, self.chmod_000, self.rename_folder]
        counter = POSTS
        while time.monotonic() < deadline:
            operation = self.random.choice(operations)
            if operation == self.create:
                counter += 1
                self.create(f"p{counter}")
            else:
                live = sorted(self.where)
                if live:
                    operation(self.random.choice(live))
        return {"changes": dict(self.results), "changes_total": sum(self.results.values()),
                "visible_max_s": round(max(self.latencies, default=0), 3),
                "visible_median_s": round(sorted(self.latencies)[len(self.latencies) // 2], 3) if self.latencies else 0,
                "late": self.late, "partial_seen_by_mutator": self.partial, "present": {slug: self.token[slug] for slug in self.where}}

    def create(self, slug: str) -> None:
        folder = self.posts / self.random.choice(FOLDERS)
        folder.mkdir(exist_ok=True)
        self._write_atomic(slug, folder / f"2024-01-01-{slug}.md")
        self._expect("create", slug, True)

    def edit_in_place(self, slug: str) -> None:
        token = self._new_token()
        with open(self.where[slug], "r+") as handle:  # the same inode, rewritten: what most editors do
            handle.truncate(0)
            handle.write(post_text(slug, token))
        self.token[slug] = token
        self._expect("edit-in-place", slug, True)

    def edit_by_rename(self, slug: str) -> None:
        self._write_atomic(slug, self.where[slug])
        self._expect("edit-by-rename", slug, True)

    def truncate(self, slug: str) -> None:
        os.truncate(self.where[slug], 0)  # an empty file is a post without a body; then it is written again
        self.results["truncate"] += 1
        time.sleep(0.3)
        self.edit_in_place(slug)

    def cut_front_matter(self, slug: str) -> None:
        """Leave the file with front matter that never closes: the last good version must keep serving."""
        token = self._new_token()
        self.where[slug].write_text(f"---\ntitle: cut\ndate: 2024-01-01\nCUT-{token} never closes\n")
        self._expect("cut-front-matter", slug, True)
        self.edit_by_rename(slug)

    def pause_mid_write(self, slug: str) -> None:
        """Write half a post, pause longer than the watcher's settle time (but within its quiet time), finish."""
        token = self._new_token()
        text = post_text(slug, token)
        middle = text.index("It ends here")
        with open(self.where[slug], "r+") as handle:
            handle.truncate(0)
            handle.write(text[:middle])
            handle.flush()
            paused_until = time.monotonic() + 0.15  # three times the watcher's settle time
            while time.monotonic() < paused_until:  # look hard for the half-written post while it is half done
                _, body = fetch(self.port, f"/posts/{slug}/")
                self.partial.extend(f"/posts/{slug}/: {found}" for found in partial_tokens(body))
            handle.write(text[middle:])
        self.token[slug] = token
        self._expect("pause-mid-write", slug, True)

    def delete(self, slug: str) -> None:
        self.where.pop(slug).unlink()
        self._expect("delete", slug, False)
        self.token.pop(slug)

    def chmod_000(self, slug: str) -> None:
        """Make a post unreadable (for a non-root server): its last good version keeps serving."""
        path = self.where[slug]
        path.chmod(0)
        self._expect("chmod-000", slug, True)
        path.chmod(0o644)
        os.utime(path)
        self._expect("chmod-back", slug, True)

    def rename_folder(self, slug: str) -> None:
        folder = self.where[slug].parent
        target = folder.with_name(f"{folder.name.split('-')[0]}-{self._new_token()[:4]}")
        os.rename(folder, target)
        for other, path in list(self.where.items()):
            if path.parent == folder:
                self.where[other] = target / path.name
        self._expect("rename-folder", slug, True)


def mutate(posts: str, port: int, seconds: float, seed: int, state: tuple[dict[str, Path], dict[str, str]],
           out: str) -> None:
    """Run the mutator in its own process, from the seeded posts, and write its figures to ``out``."""
    mutator = Mutator(Path(posts), port, seconds, seed)
    mutator.where, mutator.token = state
    figures = mutator.run()
    Path(out).write_text(json.dumps(figures))


# The load ---------------------------------------------------------------------------------------------

class Load:
    """Client threads requesting every kind of page, counting statuses and partial text."""

    def __init__(self, port: int, clients: int):
        self.port = port
        self.clients = clients
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter[int] = Counter()
        self.partial: list[str] = []
        self.errors: Counter[str] = Counter()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(self.clients):
            thread = threading.Thread(target=self._run, args=(number,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _run(self, number: int) -> None:
        chooser = random.Random(number)
        paths = ["/", "/page/2/", "/category/c1/", "/tag/t1/", "/feed.xml", "/feed.json", "/search?q=word7",
                 "/archive/", "/sitemap.xml"]
        while not self.stop.is_set():
            path = chooser.choice(paths) if chooser.random() < 0.5 else f"/posts/p{chooser.randrange(POSTS * 3)}/"
            try:
                status, body = fetch(self.port, path)
            except (OSError, http.client.HTTPException) as error:
                with self.lock:
                    self.errors[type(error).__name__] += 1
                continue
            found = partial_tokens(body) if path.startswith("/posts/") else []
            with self.lock:
                self.statuses[status] += 1
                self.partial.extend(f"{path}: {token}" for token in found)

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(15)


def worker_pids(master: int) -> list[int]:
    """Return the pids of gunicorn's workers."""
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return []
    return [int(pid) for pid in children]


def rss_mb(pid: int) -> float:
    """Return a process's resident memory in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def slowloris(port: int, connections: int, seconds: float) -> dict[str, object]:
    """Hold connections open sending a header byte at a time, and time normal requests meanwhile."""
    sockets = []
    for _ in range(connections):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        sockets.append(sock)
    latencies = []
    failures = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for sock in sockets:
            try:
                sock.sendall(b"X-a: b\r\n")
            except OSError:
                pass
        started = time.monotonic()
        try:
            status, _ = fetch(port, "/", timeout=5)
            failures += status >= 500
        except OSError:
            failures += 1
        latencies.append(time.monotonic() - started)
        time.sleep(0.2)
    for sock in sockets:
        sock.close()
    return {"slow_connections": connections, "requests": len(latencies), "failures": failures,
            "max_latency_s": round(max(latencies, default=0), 3)}


def kill_a_worker(master: int, port: int, workers: int) -> dict[str, object]:
    """SIGKILL one worker under load and time its replacement; the load counts any errors."""
    victim = worker_pids(master)[0]
    os.kill(victim, signal.SIGKILL)
    started = time.monotonic()
    while time.monotonic() - started < 10:
        pids = worker_pids(master)
        if victim not in pids and len(pids) == workers:
            break
        time.sleep(0.05)
    replaced = time.monotonic() - started
    status, _ = fetch(port, "/")
    return {"killed": victim, "replaced_in_s": round(replaced, 2), "then_status": status}


def hup_reload(master: int, workers: int) -> dict[str, object]:
    """Send HUP (graceful reload) and time until every worker has been replaced by a new one."""
    old = set(worker_pids(master))
    os.kill(master, signal.SIGHUP)
    started = time.monotonic()
    while time.monotonic() - started < 30:
        pids = set(worker_pids(master))
        if not pids & old and len(pids) == workers:
            break
        time.sleep(0.05)
    return {"replaced_all_in_s": round(time.monotonic() - started, 2)}


def main(argv: list[str] | None = None) -> int:
    """Run the fault and load test; print figures; return 0 only if every guarantee held."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the faults run (default 60)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="quire-faults-"))
    posts = work / "posts"
    posts.mkdir()
    port = free_port()
    mutator = Mutator(posts, port, args.seconds, args.seed)
    mutator.seed()
    log_path = work / "gunicorn.log"
    env = {**os.environ, "BLOG_POSTS_DIR": str(posts), "BIND": f"127.0.0.1:{port}",
           "WEB_CONCURRENCY": str(args.workers), "BLOG_URL": "http://127.0.0.1", "BLOG_WATCH": "auto",
           "BLOG_CACHE_DIR": "off"}  # start-up is not what this measures; leave no cache behind
    with open(log_path, "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    failures: list[str] = []
    figures: dict[str, object] = {}
    load = Load(port, args.clients)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if fetch(port, "/healthz")[0] == 200 and len(worker_pids(server.pid)) == args.workers:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"gunicorn did not start; see {log_path}:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        load.start()
        time.sleep(1)
        memory_start = {pid: rss_mb(pid) for pid in worker_pids(server.pid)}
        out = work / "mutator.json"
        process = multiprocessing.get_context("spawn").Process(
            target=mutate, args=(str(posts), port, args.seconds, args.seed, (mutator.where, mutator.token), str(out)))
        started = time.monotonic()
        process.start()
        process.join(args.seconds + 120)
        figures.update(json.loads(out.read_text()))
        figures["faults_seconds"] = round(time.monotonic() - started, 1)
        memory_end = {pid: rss_mb(pid) for pid in worker_pids(server.pid)}
        load.finish()
        figures["requests"] = sum(load.statuses.values())
        figures["statuses"] = dict(sorted(load.statuses.items()))
        figures["client_errors"] = dict(load.errors)
        figures["worker_rss_mb"] = {"start": round(max(memory_start.values(), default=0)),
                                    "end": round(max(memory_end.values(), default=0))}

        # Every surviving post, and only those, is reachable with its last version.
        present: dict[str, str] = figures.pop("present")  # type: ignore[assignment]
        unreachable = []
        for slug, token in sorted(present.items()):
            for _ in range(3):
                status, body = fetch(port, f"/posts/{slug}/")
                if status != 200 or f"END-{token}" not in body:
                    unreachable.append(slug)
                    break
        figures["surviving_posts"] = len(present)
        figures["unreachable"] = unreachable

        # Slow clients, then a killed worker, with the load running again.
        figures["slowloris"] = slowloris(port, max(1, args.workers - 1), 3.0)
        load = Load(port, args.clients)
        load.start()
        time.sleep(0.5)
        figures["killed_worker"] = kill_a_worker(server.pid, port, args.workers)
        time.sleep(1.0)
        load.finish()
        figures["after_kill"] = {"statuses": dict(sorted(load.statuses.items())),
                                 "client_errors": dict(load.errors)}
        load = Load(port, args.clients)  # a graceful reload must cost no request at all
        load.start()
        time.sleep(0.5)
        figures["hup"] = hup_reload(server.pid, args.workers)
        time.sleep(1.0)
        load.finish()
        figures["hup"].update({"statuses": dict(sorted(load.statuses.items())), "client_errors": dict(load.errors)})
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()

    log_text = log_path.read_text(errors="replace")
    killed = figures.get("killed_worker", {}).get("killed")  # type: ignore[union-attr]
    crashes = [line for line in log_text.splitlines()
               if re.search(r"Traceback|WORKER TIMEOUT|Exception in worker|exited with code|was sent SIG", line)
               and not (killed and str(killed) in line)]
    figures["log_crash_lines"] = crashes[:5]
    statuses: dict[int, int] = figures["statuses"]  # type: ignore[assignment]
    after: dict[int, int] = figures["after_kill"]["statuses"]  # type: ignore[index]
    hup: dict[str, Any] = figures["hup"]  # type: ignore[assignment]
    figures["errors_5xx"] = sum(count for phase in (statuses, after, hup["statuses"])
                                for status, count in phase.items() if int(status) >= 500)
    figures["partial_responses"] = len(load.partial) + len(figures["partial_seen_by_mutator"])  # type: ignore[arg-type]
    print(json.dumps(figures, indent=2, default=str))

    if figures["errors_5xx"]:
        failures.append(f"{figures['errors_5xx']} responses were 5xx")
    if figures["client_errors"]:
        failures.append(f"connection errors under faults: {figures['client_errors']}")
    if figures["partial_responses"]:
        failures.append(f"half-written text served: {(load.partial + figures['partial_seen_by_mutator'])[:3]}")
    if figures["late"]:
        failures.append(f"changes visible later than {VISIBLE_WITHIN} s: {figures['late'][:3]}")
    if unreachable:
        failures.append(f"surviving posts unreachable: {unreachable[:5]}")
    if crashes:
        failures.append(f"worker crash in the log: {crashes[:2]}")
    if max(figures["worker_rss_mb"].values()) > MEMORY_BOUND_MB:  # type: ignore[union-attr]
        failures.append(f"worker memory over {MEMORY_BOUND_MB} MB: {figures['worker_rss_mb']}")
    slow = figures["slowloris"]
    if slow["failures"] or slow["max_latency_s"] > 1.0:  # type: ignore[index,operator]
        failures.append(f"slow clients delayed others: {slow}")
    killed_figures = figures["killed_worker"]
    if killed_figures["then_status"] != 200 or killed_figures["replaced_in_s"] > 5:  # type: ignore[index,operator]
        failures.append(f"killed worker not replaced: {killed_figures}")
    lost = sum(figures["after_kill"]["client_errors"].values())  # type: ignore[index,union-attr]
    if lost > args.clients:
        failures.append(f"{lost} requests failed around the killed worker (at most {args.clients} were in flight)")
    if hup["client_errors"] or hup["replaced_all_in_s"] > 25:
        failures.append(f"graceful reload (HUP) lost requests or kept old workers: {hup}")
    shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print(f"FAILED: {failure}")
    if not failures:
        print(f"faults: {figures['requests']} requests served, errors: 0, {figures['changes_total']} changes applied, "
              f"slowest change visible after {figures['visible_max_s']} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
