"""Spreading the first load of a large posts folder over the machine's cores, with fork and a pipe per child.

Reading and parsing 10,000 posts is pure Python, about 1.5 s on one core: most of gunicorn's start. With
``preload_app`` the master does it once for every worker, so its cores are otherwise idle. Forked children
each take a slice of the files and send back their results pickled; the parent works on its own slice
meanwhile. Anything a child fails to deliver is done again in the parent, so the result never depends on
the children.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from collections.abc import Callable, Sequence
from typing import BinaryIO, TypeVar

log = logging.getLogger("quire.content")

Item = TypeVar("Item")
Result = TypeVar("Result")

# Below this many items per process, forking (a few milliseconds) and pickling cost more than they save.
MIN_ITEMS_PER_PROCESS = 500
MAX_PROCESSES = 8
# A child also pickles its results (about a fifth of the cost of parsing a post), so this process takes a
# larger slice and finishes its own at about the time the children's results arrive.
PARENT_SHARE = 1.2


def usable_cpus() -> int:
    """Return how many CPUs this process may run on (its affinity, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def may_fork() -> bool:
    """Tell whether this process can fork safely: it has fork, and no other thread whose locks a child would copy."""
    return hasattr(os, "fork") and threading.active_count() == 1


def reap(pid: int) -> int:
    """Wait for a child and return its wait status; 0 if it was already reaped (SIGCHLD ignored)."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def fork_writer(write: Callable[[BinaryIO], object]) -> tuple[int, int]:
    """Fork a child that calls ``write`` with the write end of a pipe, then exits; return (pid, read end).

    The child never returns, never runs the parent's exit handlers or flushes its buffers; it exits with 1 if
    ``write`` raises. Raises OSError (and closes the pipe) when no child can be forked.
    """
    reading, writing = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(reading)
        os.close(writing)
        raise
    if pid == 0:
        code = 1
        try:
            os.close(reading)
            with open(writing, "wb") as pipe:
                write(pipe)
            code = 0
        finally:
            os._exit(code)
    os.close(writing)
    return pid, reading


def detach(work: Callable[[], object], niceness: int, *, quiet: bool = False) -> bool:
    """Run ``work`` in a process of its own, adopted by init, at ``niceness``; False if this one may not fork.

    Nobody waits for it, and it holds none of the caller's standard input and output (a caller may wait for
    their end of file; with ``quiet``, nor standard error). The child in between exits at once, reaped here.
    """
    if not may_fork():
        return False
    try:
        child = os.fork()
    except OSError:
        return False
    if child:
        reap(child)
        return True
    code = 0
    try:
        if os.fork() == 0:
            devnull = os.open(os.devnull, os.O_RDWR)
            for descriptor in (0, 1, 2) if quiet else (0, 1):
                os.dup2(devnull, descriptor)
            os.nice(niceness)
            work()
    except BaseException:  # noqa: BLE001 - never let the parent's code run on in a forked copy
        code = 1
    finally:
        os._exit(code)


def forked_map(function: Callable[[Item], Result], items: Sequence[Item],
               processes: int | None = None) -> list[Result]:
    """Return ``[function(item) for item in items]``, computed in slices by this process and forked children.

    Results must be picklable. Runs everything here when there is one CPU, few items, no ``os.fork``, or
    other threads in this process (a fork copies their locks in whatever state they are).
    """
    wanted = min(processes or usable_cpus(), MAX_PROCESSES, len(items) // MIN_ITEMS_PER_PROCESS)
    if wanted < 2 or not may_fork():
        return [function(item) for item in items]
    shares = PARENT_SHARE + wanted - 1
    bounds = [0, *(round(len(items) * (PARENT_SHARE + index) / shares) for index in range(wanted))]
    slices = [items[start:end] for start, end in zip(bounds, bounds[1:])]
    children = [_spawn(function, part) for part in slices[1:]]
    try:
        results = [function(item) for item in slices[0]]
    except BaseException:
        _abandon(children)
        raise
    for index, (part, child) in enumerate(zip(slices[1:], children)):
        try:
            results.extend(_collect(child, function, part))
        except BaseException:
            _abandon(children[index + 1:])
            raise
    return results


def forked_call(function: Callable[[], Result]) -> Callable[[], Result]:
    """Start ``function()`` in a forked child; return a function that waits for its (picklable) result.

    This process goes on with other work meanwhile, on another core. The result is computed here instead,
    when asked for, if this process may not fork or the child fails in any way.
    """
    if not may_fork():
        return function
    try:
        child = fork_writer(lambda pipe: pipe.write(pickle.dumps(function(), protocol=pickle.HIGHEST_PROTOCOL)))
    except OSError as error:
        log.warning("cannot fork a loading process (%s); doing its work here", error)
        return function

    def result() -> Result:
        pid, reading = child
        with open(reading, "rb") as pipe:
            data = pipe.read()
        if reap(pid) == 0 and data:
            try:
                return pickle.loads(data)  # noqa: S301 - written by our own forked child, through a private pipe
            except Exception:  # noqa: BLE001 - a truncated or unreadable result is redone below
                pass
        log.warning("a loading process failed; doing its work here")
        return function()

    return result


def _abandon(children: list[tuple[int, int] | None]) -> None:
    """Close the pipes of children whose results are no longer wanted (they stop at their next write) and reap them."""
    for child in children:
        if child is not None:
            os.close(child[1])
            reap(child[0])


def _spawn(function: Callable[[Item], Result], part: Sequence[Item]) -> tuple[int, int] | None:
    """Fork a child that computes ``part`` and writes the pickled results to a pipe; return (pid, read end)."""
    try:
        return fork_writer(lambda pipe: pipe.write(pickle.dumps([function(item) for item in part],
                                                                protocol=pickle.HIGHEST_PROTOCOL)))
    except OSError as error:
        log.warning("cannot fork a loading process (%s); loading its %d files here", error, len(part))
        return None


def _collect(child: tuple[int, int] | None, function: Callable[[Item], Result],
             part: Sequence[Item]) -> list[Result]:
    """Return a child's results, or compute ``part`` here if the child failed in any way."""
    if child is None:
        return [function(item) for item in part]
    pid, reading = child
    with open(reading, "rb") as pipe:
        data = pipe.read()
    status = reap(pid)  # 0 too when the kernel reaped it itself: the results are checked below anyway
    if status == 0:
        try:
            results = pickle.loads(data)  # noqa: S301 - written by our own forked child, through a private pipe
        except Exception:  # noqa: BLE001 - a truncated or unreadable result is redone below
            results = None
        if isinstance(results, list) and len(results) == len(part):
            return results
    log.warning("a loading process failed (wait status %d); loading its %d files here", status, len(part))
    return [function(item) for item in part]
