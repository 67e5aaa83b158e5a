"""gunicorn settings for Quire; every value can be overridden on the command line or by environment."""

from __future__ import annotations

import multiprocessing
import os
import sys

from blog.config import ConfigError, load as load_settings

# gunicorn reads every top-level name here as a setting, so Quire's own names must not clash (no `config`).
try:  # Fail fast with one clear line instead of a traceback from every worker.
    _settings = load_settings()
except ConfigError as error:
    sys.exit(f"quire: configuration error: {error}")
if _settings["BLOG_DEV"]:  # shows drafts to anyone, and each open tab would hold a sync worker
    sys.exit("quire: configuration error: BLOG_DEV is for the preview server (make dev), never for gunicorn")

bind = os.environ.get("BIND") or f"127.0.0.1:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", min(multiprocessing.cpu_count() * 2 + 1, 8)))
worker_class = "sync"
timeout = 30
graceful_timeout = 30
keepalive = 5
# Recycling guards against slow leaks in any library; a recycled worker costs one catch-up scan of the
# posts folder (about 0.2 s at 10,000 posts), so it should be rare at thousands of requests a second.
max_requests = 200000
max_requests_jitter = 20000
accesslog = "-"
errorlog = "-"
loglevel = "info"
# Posts are loaded once in the master and shared by the forked workers (copy-on-write), so a recycled
# worker is ready at once; each worker then starts its own watcher and catches up with the folder.
# Code changes need a restart (or USR2) rather than HUP with preload; content is always live.
preload_app = True
# gunicorn 25+ opens a control socket at one shared path under $HOME, so two instances on one machine (a
# blog and its staging copy, or tests) would fight over it; Quire is managed with signals instead.
control_socket_disable = True


def on_starting(server) -> None:  # type: ignore[no-untyped-def]
    """Refuse a response budget the worker timeout would cut short: a slow render must cost a fallback, not a worker.

    Here rather than at the top, because ``--timeout`` on the command line is only known to gunicorn's config.
    """
    budget, timeout = _settings["BLOG_RESPONSE_SECONDS"], server.cfg.timeout
    if timeout and budget > timeout - 1:
        sys.exit(f"quire: configuration error: BLOG_RESPONSE_SECONDS ({budget:g}) must be at least 1 s less than "
                 f"gunicorn's timeout ({timeout} s), or a post that renders slowly gets its worker killed")


_forked = 0  # workers forked so far by this master


def pre_fork(server, worker) -> None:  # type: ignore[no-untyped-def]
    """Let the workers of the start serve before catching up with the posts folder; later ones catch up first.

    The master's load checked the folder moments before the first workers fork, so they catch up in the
    background; a worker forked later (recycled, or after HUP) may fork from posts hours old.
    """
    global _forked
    watchers = getattr(getattr(server.app, "callable", None), "extensions", {}).get("quire.watchers")
    if watchers is not None:  # set here, in the master, so the worker forked next is born knowing it
        watchers.catch_up_later = _forked < server.num_workers
    _forked += 1


def post_worker_init(worker) -> None:  # type: ignore[no-untyped-def]
    """Start this worker's watchers (posts, pages) before it accepts requests, rather than on its first request."""
    watcher = getattr(worker.wsgi, "extensions", {}).get("quire.watchers")
    if watcher is not None:
        watcher.ensure_running()
