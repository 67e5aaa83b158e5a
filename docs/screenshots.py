"""Take the README's theme screenshots: index and a post, desktop and mobile, light and dark.

Run from the checkout: ``.venv/bin/python docs/screenshots.py`` (needs Debian's chromium, as make test does).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser_site import PAGES, serve  # noqa: E402
from tests.test_browser import CHROMIUM, FLAGS, PIXEL  # noqa: E402

SHOTS = [
    ("index", 1280, 820, "light"), ("index", 390, 844, "dark"),
    ("post", 1280, 820, "dark"), ("post", 390, 844, "light"),
]


def main() -> None:
    """Write docs/<page>-<desktop|mobile>-<scheme>.png."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as scratch, serve(Path(scratch)) as site, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for name, width, height, scheme in SHOTS:
            context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme,
                                          device_scale_factor=1)
            context.route(lambda url: not url.startswith(site),
                          lambda route: route.fulfill(status=200, content_type="image/png", body=PIXEL))
            page = context.new_page()
            page.goto(site + PAGES[name])
            page.wait_for_function("[...document.images].every(image => image.complete)")
            kind = "desktop" if width > 800 else "mobile"
            page.screenshot(path=str(ROOT / "docs" / f"{name}-{kind}-{scheme}.png"))
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
