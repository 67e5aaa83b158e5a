"""Telling the store about changed post files: inotify through watchdog, or a cheap polling scan."""

from __future__ import annotations

import logging
import os
import threading
import stat
import time
from collections.abc import Callable
from typing import Any

from blog.content.store import PostStore

log = logging.getLogger("quire.watch")

SETTLE_SECONDS = 0.05  # a burst of writes to one file is read once, after it settles
# A file is read only once it has not been modified for this long, so a writer pausing mid-file (a slow copy,
# an editor flushing in parts) is not served half-done; a new post still shows within about 0.3 s.
QUIET_SECONDS = 0.25
# inotify drops events only when its queue overflows; a stat-only scan of the whole folder catches up. At
# 10,000 posts that scan holds a worker for 0.1-0.2 s, which at every 30 s doubled the post page's p99.
SAFETY_RESCAN_SECONDS = 300.0
# inotify watches a folder's inode: once the posts folder is deleted (``git rm`` of its last file does it) the
# watch ends, and once it is renamed (``mv posts posts.old``) the watch follows the old folder. One stat of
# the folder this often tells either apart, and it is watched again at once.
ROOT_CHECK_SECONDS = 0.5

FolderId = tuple[int, int]


class Watcher:
    """Keep one process's store current; started lazily so each forked gunicorn worker runs its own."""

    def __init__(self, store: PostStore, mode: str, poll_interval: float):
        self.store = store
        self.mode = mode
        self.poll_interval = poll_interval
        self._pid: int | None = None
        self._start_lock = threading.Lock()
        self._lock = threading.Lock()  # guards the pending changes
        self._pending: set[str] = set()
        self._rescan = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._observer: Any = None
        self._handler: Any = None
        self._watched_root: FolderId | None = None  # the folder inotify watches, by (device, inode)
        self._thread: threading.Thread | None = None
        self.active_mode = "off"

    def ensure_running(self, catch_up_later: bool = False) -> None:
        """Start watching in this process if it is not already; cheap enough to call per request.

        The store catches up with changes made since it loaded before this returns, or with ``catch_up_later``
        right after, in the watcher's thread, which then begins watching too.
        """
        if self._pid == os.getpid() or self.mode == "off":
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._start(catch_up_later)
            self._pid = os.getpid()

    def _start(self, catch_up_later: bool) -> None:
        self._stop.clear()
        # Changes may have landed since the posts were loaded (in gunicorn's master, with preload_app, possibly
        # hours ago for a recycled worker): watch, then catch up, before this process serves anything. Only the
        # workers gunicorn forks at start, moments after the master's load checked the folder, serve at once
        # and do both in the watcher's thread: at 100,000 posts the scan takes a second, and inotify's set-up
        # (watchdog lists the folder for subfolders to watch) 0.2 s, as long as the rest of a restart. Either
        # way the scan comes after the watch has begun, so a change is seen by one or the other.
        if not catch_up_later:
            self._watch()
            self.store.refresh(None)
        self._thread = threading.Thread(target=self._run, args=(catch_up_later,), name="quire-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        """Begin watching the folder: with inotify where it can (and may), else by polling."""
        self.active_mode = "poll"
        if self.mode in {"auto", "inotify"}:
            try:
                self._observer = self._start_inotify()
                self.active_mode = "inotify"
            except Exception as error:  # noqa: BLE001 - any failure to watch falls back to polling
                # Say so in auto mode too: a machine out of inotify instances (fs.inotify.max_user_instances)
                # is an operator's business, and changes now take up to a poll interval to show.
                log.warning("inotify watching failed (%s); polling every %.1fs instead", error, self.poll_interval)
                self._observer = None

    def _start_inotify(self) -> Any:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers.inotify import InotifyObserver

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in {"opened", "closed_no_write"}:
                    return
                if event.is_directory and event.event_type != "modified":
                    watcher.request_rescan()
                    return
                for path in (event.src_path, getattr(event, "dest_path", "")):
                    if path:
                        watcher.notify(os.fsdecode(path))

        observer = InotifyObserver()
        _rescan_on_overflow(observer, self.request_rescan, self.store.pages.root)
        self._handler = Handler()
        self._watched_root = _folder_id(self.store.pages.root)
        if self._watched_root is not None:  # a folder that does not exist yet is watched once it does
            observer.schedule(self._handler, self.store.pages.root, recursive=True)
        observer.daemon = True
        observer.start()
        return observer

    def _rewatch_if_replaced(self) -> bool:
        """Watch the posts folder afresh if it was deleted, replaced or renamed away; tell whether it was."""
        observer = self._observer
        current = _folder_id(self.store.pages.root)
        if current == self._watched_root or observer is None:
            return False
        observer.unschedule_all()
        if current is not None:
            observer.schedule(self._handler, self.store.pages.root, recursive=True)
        self._watched_root = current
        log.info("posts folder %s %s; watching it again", self.store.pages.root,
                 "was replaced" if current is not None else "is gone")
        return True  # the caller rescans, which also finds files written before the new watch began

    def notify(self, path: str) -> None:
        """Note that a file under the posts folder changed."""
        relative = os.path.relpath(path, self.store.pages.root)
        if relative.startswith(".."):
            return
        with self._lock:
            self._pending.add(relative.replace(os.sep, "/"))
        self._wake.set()

    def request_rescan(self) -> None:
        """Ask for a full stat scan (folders added, renamed or removed)."""
        with self._lock:
            self._rescan = True
        self._wake.set()

    def stop(self) -> None:
        """Stop watching (tests and shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=2)  # first: it may be starting the observer
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=2)
            self._observer = None
        self._pid = None

    def _run(self, begin: bool = False) -> None:
        """Take the changes as they come (and with ``begin``, begin watching and catch up first)."""
        if begin:
            self._watch()
            self.request_rescan()
        interval = self.poll_interval if self.active_mode == "poll" else SAFETY_RESCAN_SECONDS
        next_scan = time.monotonic() + interval
        retry_at: float | None = None  # when to look again at files that were still being written
        while not self._stop.is_set():
            deadline = next_scan if retry_at is None else min(next_scan, retry_at)
            if self.active_mode == "inotify":
                deadline = min(deadline, time.monotonic() + ROOT_CHECK_SECONDS)
            self._wake.wait(timeout=max(0.0, deadline - time.monotonic()))
            if self._stop.is_set():
                return
            if self._wake.is_set():
                self._wake.clear()
                time.sleep(SETTLE_SECONDS)
            with self._lock:
                pending, self._pending = self._pending, set()
                rescan, self._rescan = self._rescan, False
            if time.monotonic() >= next_scan:
                rescan = True
                next_scan = time.monotonic() + interval
            if retry_at is not None and time.monotonic() >= retry_at:
                retry_at = None
            try:
                if self.active_mode == "inotify" and self._rewatch_if_replaced():
                    rescan = True
                if rescan:
                    self.store.refresh(None, quiet=QUIET_SECONDS)
                elif pending:
                    self.store.refresh(sorted(pending), quiet=QUIET_SECONDS)
            except Exception:  # noqa: BLE001 - the watcher must outlive any one bad refresh
                log.exception("refreshing posts failed; will retry on the next change")
            unsettled = self.store.take_unsettled()
            if unsettled:
                with self._lock:
                    self._pending |= unsettled
                retry_at = time.monotonic() + QUIET_SECONDS / 2


class Watchers:
    """The watchers of one process (the posts folder's, the pages folder's), started and stopped together."""

    def __init__(self, watchers: tuple[Watcher, ...]):
        self.watchers = watchers
        # Set in gunicorn's master for each worker it forks (gunicorn.conf.py's pre_fork): True for those of
        # the start, which catch up with the folder in the background (see Watcher.ensure_running).
        self.catch_up_later = False

    def ensure_running(self) -> None:
        """Start every watcher in this process if it is not already; cheap enough to call per request."""
        for watcher in self.watchers:
            watcher.ensure_running(self.catch_up_later)

    def stop(self) -> None:
        """Stop every watcher (tests and shutdown)."""
        for watcher in self.watchers:
            watcher.stop()


def _rescan_on_overflow(observer: Any, rescan: Callable[[], None], root: str) -> None:
    """Call ``rescan`` as soon as the kernel's inotify queue overflows and events are lost.

    watchdog (7.1) rebuilds its watches on IN_Q_OVERFLOW but tells no handler, so without this the lost
    changes would wait for the safety rescan, minutes later. Its per-observer reader (``InotifyFD``) hands
    every kernel event to ``handle_event``, the one place the overflow passes; the pinned version is tested.
    """
    reader = getattr(observer, "_inotify_fd", None)
    if reader is None or not hasattr(reader, "handle_event"):
        log.warning("cannot see inotify queue overflows in this watchdog; lost changes wait for the safety rescan")
        return
    handle_event = reader.handle_event

    def handle(event: Any) -> None:
        if getattr(event, "is_queue_overflow", False):
            log.warning("inotify queue overflowed, changes were lost: rescanning %s", root)
            rescan()
        handle_event(event)

    reader.handle_event = handle


def _folder_id(path: str) -> FolderId | None:
    """Return the (device, inode) of the folder at ``path``, or None if there is no folder there."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_dev, status.st_ino) if stat.S_ISDIR(status.st_mode) else None
