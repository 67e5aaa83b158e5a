"""A real server over a fixture site, shared by the browser and HTML validity tests."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from werkzeug.serving import make_server

from blog import create_app
from tests.conftest import SEED

CODE_POST = """---
title: Code, tables and footnotes
date: 2024-03-01 10:00:00 +0000
categories: [programming]
tags: [python]
author: Ada Lindqvist
cover: /assets/cover/Binance HKVAEX.jpg
---

A post with every construct the theme styles.[^note]

## A code sample

```python
def greet(name: str) -> str:
    \"\"\"Return a greeting for ``name``, one that is long enough to need a horizontal scroll bar on a phone.\"\"\"
    return f"Hello, {name}!"
```

| Setting | Default | Meaning |
|:--|--:|:-:|
| `BLOG_PER_PAGE` | 10 | posts per page |
| `BLOG_CACHE_SECONDS` | 60 | max-age of pages |

Term
:   Its definition.

> A quotation, set apart.

[^note]: A footnote with a [link](/).
"""

TECHNICAL_POST = r"""---
title: Math, tasks and callouts
date: 2023-06-01 10:00:00 +0000
categories: [programming]
---

Energy is $E = mc^2$, a price is $5 to $10, and the roots of $ax^2 + bx + c = 0$ are

$$
x = \frac{-b \pm \sqrt{b^2 - 4ac}}{2a}
$$

$$
\begin{pmatrix} 1 & 0 & 0 & 0 & 0 & 0 & 0 & 0 \\ 0 & 1 & 0 & 0 & 0 & 0 & 0 & 0 \end{pmatrix}
\sum_{i=1}^{n} i = \frac{n(n+1)}{2} \quad \int_0^\infty e^{-x^2} \, dx = \frac{\sqrt{\pi}}{2}
$$

- [x] Write the tests
- [ ] Ship it

!!! warning "Mind the gap"
    An admonition with `code`.

> [!TIP]
> A GitHub callout.

??? note "Folded details"
    Shown on request. A broken formula stays text: $x^$.
"""

# A menu longer than the default one (nine entries, one of them long, one a single word wider than a phone), so every
# page and width is tested with it.
SITE_FILE = """\
author:
  name: Ada Lindqvist
  bio: Writes the code samples.
  links:
    - {title: Mastodon, url: "https://mastodon.example/@ada"}
social:
  - {title: GitHub, url: "https://github.com/example"}
footer: Written in Markdown, served by Quire.
nav:
  - home
  - categories
  - tags
  - archive
  - pages
  - {title: Talks and slides, url: "https://talks.example.org/"}
"""
NAV_PAGES = {"about": "About", "projects": "Projects", "uses": "Rechtsschutzversicherungsgesellschaften", "now": "Now"}

PAGES = {
    "index": "/",
    "page": "/about/",
    "post": "/posts/code-tables-and-footnotes/",
    "seed": "/posts/binance-hkvaex/",
    "technical": "/posts/math-tasks-and-callouts/",
    "category": "/category/programming/",
    "search": "/search?q=python",
    "not-found": "/no-such-page/",
}


def write_site(folder: Path) -> dict[str, str]:
    """Write the fixture site into ``folder`` (posts, the seed among them; pages; a site file); return its settings."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "site.yml").write_text(SITE_FILE, encoding="utf-8")
    pages = folder / "pages"
    pages.mkdir(parents=True)
    for number, (name, title) in enumerate(NAV_PAGES.items(), start=1):
        (pages / f"{name}.md").write_text(f"---\ntitle: {title}\nnav: {number}\n---\n\nThe {name} page.\n",
                                          encoding="utf-8")
    posts = folder / "posts"
    posts.mkdir(parents=True)
    shutil.copy(SEED, posts / "2023-11-20-binance-hkvaex.md")
    (posts / "2024-03-01-code-tables-and-footnotes.md").write_text(CODE_POST, encoding="utf-8")
    (posts / "2023-06-01-math-tasks-and-callouts.md").write_text(TECHNICAL_POST, encoding="utf-8")
    for number in range(1, 4):
        (posts / f"2024-01-0{number}-note-{number}.md").write_text(
            f"---\ntitle: Note {number}\ncategories: [notes]\ntags: [python, short]\nauthor: Tomás Ferreira\n---\n\n"
            f"Note number {number} about Python and small things.\n", encoding="utf-8")
    return {"BLOG_SITE_DIR": str(folder), "BLOG_WATCH": "off"}


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve Quire over the fixture site on a free loopback port; yield its base URL."""
    app = create_app({**write_site(folder), "BLOG_URL": "http://127.0.0.1"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
