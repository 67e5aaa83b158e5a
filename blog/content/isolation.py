"""Renders in forked child processes that can be stopped: a CPU-time deadline and a memory cap for each.

Python cannot stop a thread, and a regular expression running in C (Pygments' lexers, Python-Markdown's and
Quire's own Liquid patterns) keeps even a waiting thread from waking; only a process can be stopped. Each
process that renders (a gunicorn worker, ``blog check``, a freeze child, the render cache's filler) keeps a
small pool of render children, forked from it on first use (a fork copies the loaded code, so a child is
ready at once) and again whenever one is killed:

- a child renders one post at a time, under ``setitimer(ITIMER_PROF)``: when it has used its deadline in CPU
  seconds the kernel ends it with SIGPROF, wherever it is. That is a property of the post (the same text
  takes the same work), so it is reported and that version is never rendered again. CPU time, not wall time:
  on a busy machine (or in the render cache's filler, at nice 19) an ordinary post may wait seconds for a
  core, and must not be condemned for it. Should a child make no progress at all (stopped, starved), the
  parent kills it after ``WALL_FACTOR`` times its deadline of wall time, and that failure is not lasting: the
  post shows its text this once and is rendered again when next asked for. Its address space is
  capped with ``RLIMIT_AS`` at what it inherited plus ``RENDER_MEMORY_MB``, so a render that allocates without
  end fails with MemoryError instead of taking the machine;
- the parent waits for the answer only as long as its caller can (a response's budget); a render still
  running then finishes on its own, writes its HTML into the render cache on disk itself, and its answer (or
  its death) is collected the next time the pool is used, through the ``late`` callback of its job;
- a child holds nothing of its parent's but the two pipes to it: it exits when the parent does (end of file
  on its requests), and never keeps a listening socket or another child's pipe open.

The request is a length-prefixed pickle over a pipe: the text, its Liquid ``page`` values, the URLs its
``post_url`` and ``link`` tags resolve to (looked up by the parent, whose snapshot is the current one), and
the renderer's settings; the answer is the HTML or why there is none.
"""

from __future__ import annotations

import atexit
import os
import pickle
import resource
import select
import signal
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

RENDER_MEMORY_MB = 512  # what one render may allocate beyond the process it was forked from (BLOG_RENDER_MEMORY_MB)
MAX_CHILDREN = 3  # per process: one renders, one or two finish renders whose response moved on
# The parent kills a child that has not answered after this many times its deadline of wall time (plus
# GRACE_SECONDS): it was starved of CPU or stopped, which says nothing of the post (see the module docstring).
WALL_FACTOR = 10
GRACE_SECONDS = 0.5
_LENGTH = struct.Struct("!Q")
_FORWARDED_SIGNALS = ("SIGTERM", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGABRT", "SIGCHLD",
                      "SIGALRM", "SIGTTIN", "SIGTTOU")


class RenderFailed(Exception):
    """A render that ended without HTML: it overran its deadline or memory cap, raised, or its process died.

    ``lasting`` is False when the failure says nothing of the post (its child got no CPU in time): try again.
    """

    def __init__(self, message: str, lasting: bool = True):
        super().__init__(message)
        self.message = message
        self.lasting = lasting


class RenderPending(Exception):
    """A render still running when its caller stopped waiting; it finishes (or fails) in the background."""


@dataclass
class Job:
    """One render request, from the parent's side."""

    request: bytes
    seconds: float
    memory_mb: int
    late: Callable[[str | RenderFailed], None] | None  # told the outcome of a render its caller stopped waiting for
    deadline: float = 0.0  # monotonic time past which the child is killed (its CPU deadline is its own alarm)
    abandoned: bool = False


@dataclass
class _Child:
    pid: int
    requests: int  # the write end of its request pipe
    replies: int  # the read end of its reply pipe
    job: Job | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def available() -> bool:
    """Tell whether renders can run in child processes here (fork and setitimer: Unix)."""
    return hasattr(os, "fork") and hasattr(signal, "setitimer")


class RenderPool:
    """This process's render children, made on first use and again after each kill (see the module docstring)."""

    def __init__(self, size: int = MAX_CHILDREN):
        self.size = size
        self._pid = os.getpid()
        self._children: list[_Child] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.forked = 0  # children started, for tests and the bench
        self.jobs = 0  # renders asked for

    def render(self, settings: bytes, text: str, page_values: Mapping[str, Any], links: Mapping[str, str | None],
               seconds: float, memory_mb: int, wait: float | None = None, keep: tuple[str, str, str] | None = None,
               late: Callable[[str | RenderFailed], None] | None = None, raw_html: bool = False) -> str:
        """Return the HTML of ``text`` rendered in a child within ``seconds``; raise RenderFailed or RenderPending.

        ``settings`` are the renderer's (``markup.Renderer.settings``); ``wait`` bounds how long this call
        blocks (None: the whole deadline); past it the render goes on and ``late`` gets its outcome. ``keep``
        is (folder, fingerprint, key) of the render cache entry the child writes when it finishes.
        """
        request = pickle.dumps((settings, text, dict(page_values), dict(links), raw_html, seconds, memory_mb, keep),
                               protocol=pickle.HIGHEST_PROTOCOL)
        job = Job(request, seconds, memory_mb, late)
        self.jobs += 1
        started = time.monotonic()
        until = None if wait is None else started + max(0.0, wait)
        child = self._acquire(until)
        if child is None:
            raise RenderPending()
        try:
            job.deadline = time.monotonic() + seconds * WALL_FACTOR + GRACE_SECONDS
            child.job = job
            try:
                _send(child.requests, request)
            except OSError:  # it died while idle (killed from outside): one fresh child, once
                self._discard(child)
                child = self._acquire(until, fresh=True)
                if child is None:
                    raise RenderPending() from None
                child.job = job
                _send(child.requests, request)
            return self._await(child, job, until)
        finally:
            child.lock.release()
            with self._lock:
                self._idle.notify_all()

    def warm(self, settings: bytes) -> None:
        """Fork a child now, unless there is one, that makes its renderer for ``settings`` before taking requests.

        A child's first render sets up the Markdown engine, its extensions and Pygments (60 ms); a caller that
        will soon render (``blog freeze`` after an edit) has that done on another core while it goes on.
        """
        with self._lock:
            if self._pid != os.getpid():
                self._forget_inherited()
            if not self._children:
                self._fork(warm=settings)

    def _acquire(self, until: float | None, fresh: bool = False) -> _Child | None:
        """Return an idle child, locked, forking one if there is room; None if none frees up by ``until``."""
        with self._lock:
            if self._pid != os.getpid():
                self._forget_inherited()
            while True:
                self._collect()
                if not fresh:
                    for child in self._children:
                        if child.job is None and child.lock.acquire(blocking=False):
                            if child.job is None:
                                return child
                            child.lock.release()
                if len(self._children) < self.size:
                    child = self._fork()
                    child.lock.acquire()
                    return child
                fresh = False
                remaining = None if until is None else until - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                # Every child is finishing a render whose response moved on: each ends by its deadline.
                soonest = min((child.job.deadline for child in self._children if child.job), default=time.monotonic())
                self._idle.wait(max(0.01, min(remaining if remaining is not None else 1.0, soonest - time.monotonic(), 0.1)))

    def _await(self, child: _Child, job: Job, until: float | None) -> str:
        """Wait for the child's answer to ``job`` until ``until`` (then leave it running) or its deadline (then kill)."""
        while True:
            now = time.monotonic()
            stop = job.deadline if until is None else min(until, job.deadline)
            ready, _, _ = select.select([child.replies], [], [], max(0.0, stop - now))
            if ready:
                outcome = self._answer(child, job)
                if isinstance(outcome, RenderFailed):
                    raise outcome
                return outcome
            if time.monotonic() >= job.deadline:
                self._kill(child)
                raise _starved(job)
            if until is not None and time.monotonic() >= until:
                job.abandoned = True
                raise RenderPending()

    def _answer(self, child: _Child, job: Job) -> str | RenderFailed:
        """Read the child's answer to ``job`` (its pipe is readable); a child that died is reaped and replaced later."""
        data = _receive(child.replies)
        child.job = None
        if data is None:
            status = self._discard(child)
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGPROF:
                return _overran(job)
            if os.WIFSIGNALED(status):
                return RenderFailed(f"the render process was killed by signal {os.WTERMSIG(status)}")
            return RenderFailed(f"the render process ended (exit status {os.WEXITSTATUS(status)})")
        kind, value = pickle.loads(data)  # noqa: S301 - our own forked child, through a private pipe
        if kind == "html":
            return value
        if kind == "memory":
            self._discard(child)  # it exits after saying so: its heap is not worth keeping
            return RenderFailed(f"rendering needed more than {job.memory_mb} MB of memory")
        return RenderFailed(f"rendering failed ({value})")

    def _collect(self) -> None:
        """Take the answers of renders whose callers stopped waiting, and kill those past their deadline."""
        for child in list(self._children):
            job = child.job
            if job is None or not job.abandoned or not child.lock.acquire(blocking=False):
                continue
            try:
                ready, _, _ = select.select([child.replies], [], [], 0)
                if ready:
                    outcome = self._answer(child, job)
                elif time.monotonic() >= job.deadline:
                    self._kill(child)
                    outcome = _starved(job)
                else:
                    continue
                if job.late is not None:
                    job.late(outcome)
            finally:
                child.lock.release()

    def _fork(self, warm: bytes | None = None) -> _Child:
        requests_read, requests_write = os.pipe()
        replies_read, replies_write = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            for descriptor in (requests_read, requests_write, replies_read, replies_write):
                os.close(descriptor)
            raise
        if pid == 0:  # the child: never returns, never runs the parent's exit handlers or flushes its buffers
            code = 1
            try:
                _serve(requests_read, replies_write, warm)
                code = 0
            finally:
                os._exit(code)
        os.close(requests_read)
        os.close(replies_write)
        os.set_inheritable(requests_write, False)
        os.set_inheritable(replies_read, False)
        child = _Child(pid, requests_write, replies_read)
        self._children.append(child)
        self.forked += 1
        return child

    def _kill(self, child: _Child) -> None:
        try:
            os.kill(child.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        child.job = None
        self._discard(child)

    def _discard(self, child: _Child) -> int:
        """Close a child's pipes and reap it (it has exited, or ends at once on the end of its requests)."""
        for descriptor in (child.requests, child.replies):
            try:
                os.close(descriptor)
            except OSError:
                pass
        if child in self._children:
            self._children.remove(child)
        try:
            return os.waitpid(child.pid, 0)[1]
        except ChildProcessError:
            return 0

    def _forget_inherited(self) -> None:
        """In a forked copy of a process with a pool: close its children's pipes; they are not this process's."""
        for child in self._children:
            for descriptor in (child.requests, child.replies):
                try:
                    os.close(descriptor)
                except OSError:
                    pass
        self._children = []
        self._pid = os.getpid()

    def close(self) -> None:
        """Stop every child of this process and reap it."""
        with self._lock:
            if self._pid != os.getpid():
                self._forget_inherited()
                return
            for child in list(self._children):
                self._kill(child)

    def children(self) -> list[int]:
        """Return the pids of this process's render children."""
        return [child.pid for child in self._children] if self._pid == os.getpid() else []


def _overran(job: Job) -> RenderFailed:
    return RenderFailed(f"rendering took longer than {job.seconds:g} s")


def _starved(job: Job) -> RenderFailed:
    seconds = job.seconds * WALL_FACTOR + GRACE_SECONDS
    return RenderFailed(f"the render process did not finish within {seconds:g} s of wall time", lasting=False)


_pool: RenderPool | None = None
_pool_lock = threading.Lock()


def pool() -> RenderPool:
    """Return this process's render pool, made on first use (a forked process makes its own)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = RenderPool()
            atexit.register(_close_pool)
        return _pool


def _close_pool() -> None:
    if _pool is not None:
        _pool.close()


# The child ----------------------------------------------------------------------------------------------

# What a warmed child renders first: a heading, inline markup, a fenced code block and a table.
WARM_UP_TEXT = ("# Warm\n\nSome *text*, a [link](/) and `code`.\n\n```python\nprint(1)\n```\n\n"
                "| a | b |\n|---|---|\n| 1 | 2 |\n")


def _serve(requests: int, replies: int, warm: bytes | None = None) -> None:
    """Render requests until the parent goes away (end of file), each under its own alarm.

    With ``warm`` settings, first make that renderer and render WARM_UP_TEXT with it (requests wait meanwhile).
    """
    from blog.content.markup import Renderer  # imported by the parent long before: no import runs here
    from blog.content.render_cache import write_entry

    for name in _FORWARDED_SIGNALS:  # the server's handlers are not this process's business
        signal.signal(getattr(signal, name), signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in a terminal: the parent stops it
    signal.signal(signal.SIGPROF, signal.SIG_DFL)  # the deadline's alarm ends the process, whatever a profiler set
    keep = sorted((requests, replies))
    os.closerange(3, keep[0])  # listening sockets, other children's pipes, watchers: none stay open here
    os.closerange(keep[0] + 1, keep[1])
    os.closerange(keep[1] + 1, _max_descriptor())
    renderers: dict[bytes, Renderer] = {}
    if warm is not None:
        try:
            renderers[warm] = Renderer.from_settings(warm)
            renderers[warm].convert(WARM_UP_TEXT, lambda name: None, {})
        except Exception:  # noqa: BLE001 - the first request makes its renderer again and meets the trouble itself
            renderers.clear()
    inherited = _address_space()
    while True:
        data = _receive(requests)
        if data is None:
            return
        settings, text, page_values, links, raw_html, seconds, memory_mb, target = pickle.loads(data)  # noqa: S301 - our parent
        fatal = False
        _cap_memory(inherited + memory_mb * 1024 * 1024)
        signal.setitimer(signal.ITIMER_PROF, seconds)  # CPU seconds of this process: see the module docstring
        try:
            renderer = renderers.get(settings)
            if renderer is None:
                renderer = renderers[settings] = Renderer.from_settings(settings)
            answer: tuple[str, str] = ("html", renderer.convert(text, links.get, page_values, raw_html))
        except MemoryError:
            answer, fatal = ("memory", ""), True
        except Exception as error:  # noqa: BLE001 - any failure (RecursionError too) is this post's problem
            answer = ("error", f"{type(error).__name__}: {str(error)[:200]}")
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        if answer[0] == "html" and target is not None:
            write_entry(*target, answer[1])  # a finished render is kept even if nobody waits for it any more
        _send(replies, pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))
        if fatal:
            return


def _address_space() -> int:
    """Return the size of this process's address space, in bytes."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 * 4  # rough, off Linux


def _cap_memory(limit: int) -> None:
    """Limit this process's address space to ``limit`` bytes (the soft limit: the next job may set another)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _max_descriptor() -> int:
    try:
        return max(int(name) for name in os.listdir("/proc/self/fd")) + 1
    except (OSError, ValueError):
        return os.sysconf("SC_OPEN_MAX")


def _send(descriptor: int, data: bytes) -> None:
    view = memoryview(_LENGTH.pack(len(data)) + data)
    while view:
        view = view[os.write(descriptor, view):]


def _receive(descriptor: int) -> bytes | None:
    """Read one length-prefixed message; None at the end of the pipe (or a message cut short)."""
    header = _read_exactly(descriptor, _LENGTH.size)
    if header is None:
        return None
    return _read_exactly(descriptor, _LENGTH.unpack(header)[0])


def _read_exactly(descriptor: int, size: int) -> bytes | None:
    chunks, wanted = [], size
    while wanted:
        chunk = os.read(descriptor, min(wanted, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)
