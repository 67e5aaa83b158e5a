"""Pieces every benchmark here shares: servers on loopback, timing the first response, RSS, wrk, tables."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
START_TIMEOUT = 60.0


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """Return (status, body) for a GET, with status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0, b""


@dataclass
class Server:
    """A gunicorn started by the benchmark: its master process, base URL and time to first answer."""

    process: subprocess.Popen[bytes]
    base: str
    cold_start: float

    def worker_rss_mb(self) -> list[float]:
        """Return the resident memory of each worker, in MB."""
        sizes = []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        for pid in children:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
        return sizes


@contextmanager
def gunicorn(arguments: Sequence[str], env: dict[str, str], cwd: Path = ROOT,
             probe: str = "/") -> Iterator[Server]:
    """Start gunicorn on a free loopback port, wait for a 200 on ``probe``, and always stop it."""
    port = free_port()
    command = [PYTHON, "-m", "gunicorn", *arguments, "--bind", f"127.0.0.1:{port}",
               "--access-logfile", "/dev/null", "--error-logfile", "-"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        while fetch(base + probe, timeout=2)[0] != 200:
            if process.poll() is not None or time.perf_counter() - started > START_TIMEOUT:
                raise RuntimeError(f"server did not start: {' '.join(command)}\n"
                                   + (process.stderr.read().decode()[-2000:] if process.poll() is not None else ""))
            time.sleep(0.02)
        yield Server(process, base, time.perf_counter() - started)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass(frozen=True)
class Load:
    """What wrk measured against one URL."""

    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: float, threads: int = 2, connections: int = 16) -> Load:
    """Drive ``url`` with wrk and return requests per second, median and p99 latency, and socket errors."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (make bench installs it)")
    output = subprocess.run([binary, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                            capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]

    def percentile(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")

    errors = sum(int(number) for number in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Load(rate, percentile("50"), percentile("99"), errors + (int(non_2xx.group(1)) if non_2xx else 0))


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the value below which ``fraction`` of ``values`` fall (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
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
