"""Quire's log lines: one format with gunicorn's, and names or messages that can never forge a line."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import sys
import tempfile
import weakref

# Control characters (C0, DEL, C1), Unicode line and paragraph separators, and bidirectional overrides: a
# file name holding one could start a new line or reorder what the reader sees.
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# gunicorn's error log: `[2026-12-03 12:00:00 +0000] [1234] [INFO] message`.
LINE_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"


def printable(text: str) -> str:
    """Return ``text`` with control characters escaped as ``\\n``, ``\\x1b``, ``\\u2028``, so it stays one line."""
    return _UNPRINTABLE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


class Formatter(logging.Formatter):
    """Format records as gunicorn does, with the message's control characters escaped."""

    def __init__(self) -> None:
        super().__init__(LINE_FORMAT, DATE_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        message = record.message
        record.message = printable(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message


def configure() -> None:
    """Send Quire's log lines to stderr in gunicorn's format, unless the host application set up logging."""
    logger = logging.getLogger("quire")
    logger.setLevel(logging.INFO)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(Formatter())
        logger.addHandler(handler)


class SiteVoice:
    """Choose the one process of a site that logs its files' problems: the loading one, then a single worker.

    Under gunicorn with ``preload_app`` the master loads the posts and logs what it finds; each worker then
    keeps its own copy up to date, and would log every later problem once per worker. Workers share this
    object's file, inherited from the master; a POSIX record lock on it belongs to one process only and is
    released when that process ends, so the first worker to ask speaks, and another takes over after it.
    """

    def __init__(self) -> None:
        descriptor, path = tempfile.mkstemp(prefix="quire-voice-")
        os.unlink(path)  # only the descriptor is needed, and the workers inherit it
        self._descriptor = descriptor
        weakref.finalize(self, os.close, descriptor)
        self._loader = os.getpid()
        self._speaking = False

    def speaks(self) -> bool:
        """Tell whether this process logs content problems, claiming the site's voice if no worker holds it."""
        if os.getpid() == self._loader or self._speaking:
            return True
        try:
            fcntl.lockf(self._descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        self._speaking = True
        return True
