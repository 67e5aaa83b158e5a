"""Pieces every benchmark here shares: gunicorn on loopback, first-response timing, worker RSS, wrk, tables."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN_CONFIG = Path(__file__).resolve().with_name("gunicorn_conf.py")
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

# Loopback only, whatever proxy the environment names: the load must never leave this machine.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerFailed(RuntimeError):
    """A server exited, or did not answer 200 in time; the message says which, with its log's tail."""


def run_checkout(script: str, checkout: Path, site: Path, **settings: str) -> Any:
    """Run ``script`` in a fresh interpreter of ``checkout`` over ``site``; return the JSON of its last line.

    The child sees none of this shell's ``BLOG_*`` settings, only the site's folders, ``BLOG_URL`` and
    ``settings`` (with ``CHECKOUT`` naming the checkout), so two checkouts compared side by side read the
    same site the same way.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("BLOG_")}
    env.update(CHECKOUT=str(checkout), BLOG_SITE_DIR=str(site), BLOG_POSTS_DIR=str(site / "posts"),
               BLOG_URL="http://127.0.0.1:8000", **settings)
    output = subprocess.run([sys.executable, "-c", script], env=env, cwd=checkout, check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def compile_once(checkout: Path) -> None:
    """Write the bytecode of ``checkout``'s Python files, as an installed Quire has it.

    Where PYTHONDONTWRITEBYTECODE is set (as on the machines these figures come from), every run would
    otherwise compile Quire from source first: a tenth of a second or more that no install pays.
    """
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(checkout / "blog"), str(checkout / "wsgi.py")],
                   check=True, capture_output=True)


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_listening(port: int) -> bool:
    """Return whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_port_free(port: int, timeout: float = 10.0) -> bool:
    """Wait until nothing listens on ``port``; return False if something still does at the deadline."""
    deadline = time.monotonic() + timeout
    while port_listening(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def fetch(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """Return (status, body) for a GET, with status 0 when nothing answered."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError):  # refused, reset or timed out: the server is not answering yet
        return 0, b""


@dataclass
class Server:
    """A gunicorn started by the benchmark: its master process, port, log and time to first answer."""

    process: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]
    cold_start: float = float("nan")

    @property
    def base(self) -> str:
        """Return the base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        """Return whether the master is still running."""
        return self.process.poll() is None

    def pids(self) -> list[int]:
        """Return the master's and its workers' process ids."""
        return [self.process.pid, *self.worker_pids()]

    def worker_pids(self) -> list[int]:
        """Return the process ids of the master's children, its workers."""
        master = self.process.pid
        try:
            return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
        except OSError:  # kernels without CONFIG_PROC_CHILDREN: find the children by their parent id instead
            children = []
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == master:
                    children.append(int(stat.parent.name))
            return children

    def worker_rss_mb(self) -> list[float]:
        """Return the resident memory of each worker, in MB (shared copy-on-write pages count in each)."""
        sizes = []
        for pid in self.worker_pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:  # a worker recycled between listing and reading
                continue
            found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
            if found:
                sizes.append(int(found.group(1)) / 1024)
        return sorted(sizes)

    def worker_pss_mb(self) -> list[float]:
        """Return the proportional memory of each worker, in MB: shared pages split between their sharers.

        Read from /proc/PID/smaps_rollup; an empty list where the kernel has none (before Linux 4.14).
        """
        sizes = []
        for pid in self.worker_pids():
            try:
                rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            found = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
            if found:
                sizes.append(int(found.group(1)) / 1024)
        return sorted(sizes)

    def total_pss_mb(self) -> float:
        """Return the proportional memory of every process of the server together, in MB.

        Its master, workers, their render children and the processes detached from it (the caches' fillers):
        its process group, which the server was started as the leader of. What the server takes from the
        machine, however its pages are shared: a worker's PSS rises when fewer processes share its pages.
        """
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != self.process.pid:
                    continue
                rollup = (stat.parent / "smaps_rollup").read_text()
            except (OSError, IndexError, ValueError):  # gone meanwhile
                continue
            found = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
            total += int(found.group(1)) if found else 0
        return total / 1024

    def log_tail(self, characters: int = 2000) -> str:
        """Return the end of the server's stderr log."""
        self.log.flush()
        self.log.seek(0, os.SEEK_END)
        size = self.log.tell()
        self.log.seek(max(0, size - characters))
        return self.log.read().decode("utf-8", "replace")


def _stop(server: Server) -> None:
    """Stop the server's whole process group: gracefully, then by force; wait until its port is free."""
    group = server.process.pid
    try:
        os.killpg(group, signal.SIGTERM)
        server.process.wait(timeout=STOP_TIMEOUT)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    # Workers that outlived their master (or a master that ignored TERM) must not keep loading the machine.
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
    server.process.wait()
    wait_port_free(server.port)
    server.log.close()


@contextmanager
def _running(command: list[str], env: Mapping[str, str], port: int, cwd: Path, probe: str) -> Iterator[Server]:
    """Start ``command``, wait for a 200 on ``probe`` (timing it from the spawn), and always stop it.

    Raises ServerFailed when the server exits or gives no 200 within START_TIMEOUT seconds.
    """
    # A file rather than a pipe: nobody reads a pipe during the load, and a full one would block the server.
    log = tempfile.TemporaryFile(prefix="bench-gunicorn-")
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env}, stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log, start_new_session=True)
    server = Server(process, port, log)
    name = command[-1]
    try:
        deadline = started + START_TIMEOUT
        status = 0
        while True:
            # A refused connection returns at once; a server busy loading gets until the deadline to answer.
            status = fetch(server.base + probe, timeout=max(0.1, deadline - time.perf_counter()))[0]
            if status == 200:
                break
            if not server.alive():
                raise ServerFailed(f"{name} exited with code {process.returncode} before answering {probe}\n"
                                   + server.log_tail())
            if time.perf_counter() > deadline:
                text = server.log_tail(100_000)
                why = ("; gunicorn killed its workers at their timeout while they answered"
                       if "WORKER TIMEOUT" in text else "")
                raise ServerFailed(f"{name} gave no 200 on {probe} within {START_TIMEOUT:.0f} s "
                                   f"(last status {status or 'none'}{why})\n" + text[-2000:])
            time.sleep(0.02)
        server.cold_start = time.perf_counter() - started
        yield server
    finally:
        _stop(server)


@contextmanager
def serve(app: str, env: Mapping[str, str], *, port: int | None = None, workers: int = 2,
          probe: str = "/", root: Path = ROOT) -> Iterator[Server]:
    """Serve ``app`` from ``root`` under the settings every compared app shares, and always stop it.

    Those settings: bench/gunicorn_conf.py (Quire's shipped file, access log off), ``workers`` sync workers,
    127.0.0.1 on ``port`` (a free one by default). ``root`` is this checkout, or another one (an older commit
    measured side by side), whose own bench/gunicorn_conf.py and code are then used. Raises ServerFailed when
    no 200 comes on ``probe``.
    """
    port = port or free_port()
    config = root / "bench" / "gunicorn_conf.py"
    command = [PYTHON, "-m", "gunicorn", "--config", str(config if config.exists() else GUNICORN_CONFIG),
               "--workers", str(workers), "--worker-class", "sync", "--bind", f"127.0.0.1:{port}", app]
    with _running(command, env, port, root, probe) as server:
        yield server


@contextmanager
def gunicorn(arguments: Sequence[str], env: Mapping[str, str], cwd: Path = ROOT, probe: str = "/",
             port: int | None = None) -> Iterator[Server]:
    """Start gunicorn with ``arguments`` (config, workers, app) on loopback, access log to /dev/null; always stop it.

    For benchmarks that choose their own settings; raises ServerFailed when no 200 comes on ``probe``.
    """
    port = port or free_port()
    command = [PYTHON, "-m", "gunicorn", *arguments, "--bind", f"127.0.0.1:{port}",
               "--access-logfile", "/dev/null", "--error-logfile", "-"]
    with _running(command, env, port, cwd, probe) as server:
        yield server


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C, so the servers started inside are stopped on the way out."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _machine_jiffies() -> tuple[int, int]:
    """Return the CPU time all cores spent busy in processes or lent to other machines (steal), and in total."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    # Interrupt time is left out of busy: on loopback it is mostly the benchmark's own packets, and the
    # kernel charges it to no process, so counting it would blame others for the load we make.
    busy = user + nice + system + steal
    return busy, busy + irq + softirq + idle + iowait


def _process_jiffies(pids: Sequence[int]) -> int:
    """Return the CPU time the processes ``pids`` have used, in clock ticks."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


class OtherCpu:
    """Measure the share of the machine's CPU that went to processes outside the benchmark over an interval.

    On a shared machine this says how far to trust the figures taken meanwhile: the benchmark's own
    processes (these ``pids``, this process and the children it waited for, such as wrk) are subtracted.
    """

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self._start = self._ours_and_machine()

    def _ours_and_machine(self) -> tuple[float, int, int]:
        times = os.times()
        ticks = os.sysconf("SC_CLK_TCK")
        ours = _process_jiffies(self.pids) + (times.user + times.system + times.children_user
                                              + times.children_system) * ticks
        return (ours, *_machine_jiffies())

    def share(self) -> float:
        """Return the fraction (0 to 1) of all CPU time since construction used by other processes."""
        ours, busy, total = self._ours_and_machine()
        elapsed = total - self._start[2]
        if elapsed <= 0:
            return float("nan")
        return max(0.0, (busy - self._start[1]) - (ours - self._start[0])) / elapsed


@dataclass(frozen=True)
class Load:
    """What wrk measured against one URL."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    socket_errors: int
    non_2xx: int

    @property
    def errors(self) -> int:
        """Return the failed requests: socket errors (timeouts included) and non-2xx/3xx answers."""
        return self.socket_errors + self.non_2xx


class WrkFailed(RuntimeError):
    """wrk exited with an error or printed nothing it could be measured by."""


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def wrk_binary() -> str:
    """Return wrk's path, or exit with a message telling how to install it."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("bench: wrk is not installed; install it with `apt-get install -y wrk` "
                         "(`make bench` does this for you)")
    return binary


def parse_wrk(output: str) -> Load:
    """Return what wrk ``--latency`` printed: requests per second, p50 and p99 in ms, request and error counts."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    requests = re.search(r"^\s*(\d+) requests in ", output, re.MULTILINE)
    if rate is None or requests is None:
        raise WrkFailed("wrk printed no Requests/sec:\n" + output[-1000:])

    def percentile_ms(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
        return float(found.group(1)) * _UNITS_MS[found.group(2)] if found else float("nan")

    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Load(float(rate.group(1)), percentile_ms("50"), percentile_ms("99"), int(requests.group(1)),
                sum(int(count) for count in socket_errors.groups()) if socket_errors else 0,
                int(non_2xx.group(1)) if non_2xx else 0)


URLS_SCRIPT = Path(__file__).resolve().with_name("urls.lua")


def wrk(url: str, seconds: float, threads: int = 2, connections: int = 16, timeout: float = 30.0,
        paths: Path | None = None, once: bool = False) -> Load:
    """Drive ``url`` with wrk for ``seconds`` and return what it measured.

    With ``paths`` (a file of URL paths, one a line), wrk requests those paths in their order instead of
    ``url``'s own (bench/urls.lua): round and round, or with ``once`` each path once, stopping early when
    all are done. A ``once`` run uses one wrk thread for all its connections: a thread that stops leaves the
    connections it had opened but not written to open, and each holds a sync worker waiting for a request
    until wrk exits, so with two threads the first to finish stalled the other's last requests for seconds
    (a 4-5 s p99, and the ceiling's crawl measured at a quarter of its rate). ``timeout`` is wrk's
    per-request limit; its default of 2 s would drop a slow app's slowest answers from the percentiles
    instead of reporting them.
    """
    if once:
        threads = 1
    command = [wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", f"--timeout={timeout:g}s",
               "--latency", url]
    times = Path(tempfile.mkdtemp(prefix="bench-wrk-")) / "times"
    if paths is not None:
        command[-1:-1] = ["--script", str(URLS_SCRIPT)]
        command += ["--", str(paths), str(threads), "once" if once else "cycle", str(times)]
    try:
        finished = subprocess.run(command, capture_output=True, text=True, check=False,
                                  timeout=seconds + timeout + 30)
    except subprocess.TimeoutExpired as error:
        raise WrkFailed(f"wrk did not finish: {' '.join(command)}") from error
    finally:
        ends = [path.read_text().split() for path in sorted(times.parent.glob("times-*"))]
        shutil.rmtree(times.parent)
    if finished.returncode != 0:
        raise WrkFailed(f"wrk exited with code {finished.returncode}: {finished.stderr.strip()[-500:]}")
    load = parse_wrk(finished.stdout)
    if once and len(ends) == threads:  # every thread finished its share early: rate over the time it took
        elapsed = max(float(end) for _, end in ends) - min(float(start) for start, _ in ends)
        load = dataclasses.replace(load, requests_per_second=load.requests / max(elapsed, 1e-6))
    return load


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile: the smallest value with ``fraction`` of ``values`` at or below it."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def table(header: Sequence[str], rows: Sequence[Sequence[object]], left: int | None = None) -> str:
    """Return a Markdown table whose first ``left`` columns (all by default) align left and the rest right."""
    rule = ["---" if left is None or index < left else "---:" for index in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


@contextmanager
def reusable_time_wait() -> Iterator[None]:
    """Let loopback reuse TIME_WAIT ports while wrk opens a connection per request to sync workers."""
    knob = Path("/proc/sys/net/ipv4/tcp_tw_reuse")
    try:
        old = knob.read_text().strip()
        knob.write_text("1")
    except OSError:
        yield
        return
    try:
        yield
    finally:
        knob.write_text(old)
