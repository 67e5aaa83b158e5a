"""The code itself: no name defined twice, no import or variable left unused (pyflakes' checks, through ruff)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_pyflakes_finds_nothing() -> None:
    # A second module-level function under an existing name silently replaced the first: BLOG_FEED_PATH's
    # check became every site folder's (49e6624). Redefinitions, unused names and undefined ones are caught here.
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F", "--output-format", "concise",
                             "--no-cache", "blog", "tests", "bench", "wsgi.py", "gunicorn.conf.py", "docs"],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
