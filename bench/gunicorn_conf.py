"""gunicorn settings for every app the benchmark serves: Quire's shipped file, with the access log truly off."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

# Quire, the baseline and the ceiling all run under these same settings (preload, timeouts, worker hooks), so
# the comparison is between the apps and not between server setups. The harness sets workers, worker class and
# bind on the command line, which gunicorn ranks above this file.
_ROOT = Path(__file__).resolve().parent.parent
_SHIPPED = _ROOT / "gunicorn.conf.py"
if _SHIPPED.exists():
    if str(_ROOT) not in sys.path:  # the shipped file imports blog, as it can when gunicorn runs from the root
        sys.path.insert(0, str(_ROOT))
    globals().update({name: value for name, value in runpy.run_path(str(_SHIPPED)).items()
                      if not name.startswith("_")})

# None rather than --access-logfile /dev/null: gunicorn still formats every line for /dev/null, and that cost
# lands on the one app fast enough for it to show, the ceiling.
accesslog = None
errorlog = "-"
# gunicorn 25+ gives every instance the same control socket under $HOME by default; the benchmark's servers
# must neither take it from a gunicorn someone else runs on this machine nor lose it to one.
control_socket_disable = True
