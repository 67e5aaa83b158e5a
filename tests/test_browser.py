"""The theme in a real headless Chromium: no errors, no overflow, accessible, keyboard usable, copy works."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_site import PAGES, serve

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update"]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
# Images from other hosts (the seed's) get this 1x1 PNG: the machine has no internet, readers do.
PIXEL = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                      "1f15c4890000000d49444154789c6360f8cf000000030101006a1f6d5f0000000049454e44ae426082")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serve(tmp_path_factory.mktemp("browser")) as base:
        yield base


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    assert os.path.exists(CHROMIUM), "Chromium is missing: make test installs Debian's chromium package"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


def open_page(browser, site: str, path: str, width: int = 1280, scheme: str = "light", **options):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme, **options)
    context.route(lambda url: not url.startswith(site),
                  lambda route: route.fulfill(status=200, content_type="image/png", body=PIXEL))
    page = context.new_page()
    problems: list[str] = []
    def on_console(message) -> None:  # type: ignore[no-untyped-def]
        # The 404 page's own status is reported as a console error; it is the page under test, not a fault.
        if message.type == "error" and message.location.get("url") != site + path:
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
    page.on("response", lambda response: problems.append(f"{response.status}: {response.url}")
            if response.url.startswith(site) and response.status >= 400 and response.url != site + path else None)
    page.goto(site + path)
    page.wait_for_load_state("load")
    return context, page, problems


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 1280])
@pytest.mark.parametrize("name", list(PAGES))
def test_page_renders_cleanly_and_accessibly(browser, site: str, name: str, width: int, scheme: str) -> None:  # type: ignore[no-untyped-def]
    from axe_playwright_python.sync_playwright import Axe

    context, page, problems = open_page(browser, site, PAGES[name], width, scheme)
    try:
        assert problems == []
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {width}px"
        assert page.locator("h1").count() == 1
        for landmark in ("header", "nav", "main", "footer"):
            assert page.locator(landmark).count() >= 1, landmark
        results = Axe().run(page)
        serious = [f"{violation['id']} ({violation['impact']}): {violation['help']}"
                   for violation in results.response["violations"] if violation["impact"] in {"serious", "critical"}]
        assert serious == []
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}-{scheme}.png"), full_page=True)
    finally:
        context.close()


def test_keyboard_reaches_skip_link_then_navigation_and_opens_a_post(browser, site: str) -> None:  # type: ignore[no-untyped-def]
    context, page, problems = open_page(browser, site, "/")
    try:
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip-link"
        assert page.locator(".skip-link").is_visible()
        focused_in_header = []
        for _ in range(3):
            page.keyboard.press("Tab")
            focused_in_header.append(page.evaluate("document.activeElement.closest('header') !== null"))
        assert all(focused_in_header)
        assert page.evaluate("document.activeElement.closest('nav') !== null")
        for _ in range(20):  # on through the search form to the first post's title
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.matches('.card-title a')"):
                break
        target = page.evaluate("document.activeElement.getAttribute('href')")
        assert target.startswith("/posts/")
        page.keyboard.press("Enter")
        page.wait_for_url(site + target)
        assert page.locator("h1").inner_text() == page.title().split(" · ")[0]
        assert problems == []
    finally:
        context.close()


def test_copy_button_copies_the_code(browser, site: str) -> None:  # type: ignore[no-untyped-def]
    context, page, problems = open_page(browser, site, PAGES["post"], permissions=["clipboard-read", "clipboard-write"])
    try:
        button = page.locator(".highlight .copy-button").first
        button.click()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == page.locator(".highlight pre").first.inner_text()
        assert "def greet(name: str) -> str:" in copied
        assert button.inner_text() == "Copied"
        assert problems == []
    finally:
        context.close()


def test_code_blocks_work_without_javascript(browser, site: str) -> None:  # type: ignore[no-untyped-def]
    context, page, problems = open_page(browser, site, PAGES["post"], java_script_enabled=False, width=375)
    try:
        assert page.locator(".copy-button").count() == 0
        code = page.locator(".highlight pre").first
        assert "def greet" in code.inner_text()
        assert page.evaluate("(() => { const pre = document.querySelector('.highlight pre');"
                             " return getComputedStyle(pre).overflowX; })()") == "auto"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        context.close()


def test_images_in_posts_are_lazy_and_send_no_referrer(browser, site: str) -> None:  # type: ignore[no-untyped-def]
    context, page, problems = open_page(browser, site, PAGES["seed"])
    try:
        image = page.locator(".post-body img").first
        assert image.get_attribute("loading") == "lazy"
        assert image.get_attribute("referrerpolicy") == "no-referrer"
        cover = page.locator(".post-cover img")
        assert cover.get_attribute("alt") == page.locator("h1").inner_text()
        assert cover.get_attribute("width") and cover.get_attribute("height")
    finally:
        context.close()


# The browser tests' widths, and the narrowest phone and a tablet between them.
@pytest.mark.parametrize("width", [320, 375, 768, 1280])
def test_a_long_menu_stays_whole_and_reachable(browser, site: str, width: int) -> None:  # type: ignore[no-untyped-def]
    context, page, problems = open_page(browser, site, PAGES["page"], width)
    try:
        assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        boxes = page.evaluate("""() => {
            const box = (element) => { const r = element.getBoundingClientRect();
                                       return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
            const wrap = document.querySelector('.site-header .wrap'), style = getComputedStyle(wrap);
            const header = box(wrap);  // its content box: the parts stay off the padding at the screen's edges
            header.left += parseFloat(style.paddingLeft); header.right -= parseFloat(style.paddingRight);
            return {header: header,
                    title: box(document.querySelector('.site-title')),
                    search: box(document.querySelector('.site-search')),
                    links: [...document.querySelectorAll('.site-nav a')].map(box)};
        }""")
        links = boxes["links"]
        assert len(links) == 9
        parts = [boxes["title"], boxes["search"], *links]
        for number, one in enumerate(parts):  # every part inside the header, none drawn over another
            assert boxes["header"]["left"] <= one["left"] and one["right"] <= boxes["header"]["right"] <= width
            assert boxes["header"]["top"] <= one["top"] and one["bottom"] <= boxes["header"]["bottom"]
            for other in parts[number + 1:]:
                apart = (one["right"] <= other["left"] or other["right"] <= one["left"]
                         or one["bottom"] <= other["top"] or other["bottom"] <= one["top"])
                assert apart, (one, other)
        rows = {round(link["top"]) for link in links}
        starts = [min(link["left"] for link in links if round(link["top"]) == row) for row in rows]
        assert all(abs(start - links[0]["left"]) < 1 for start in starts)  # rows under one another, not scattered
        if width >= 768:  # room enough: the title and search share the first row, the menu has the next ones
            assert boxes["search"]["bottom"] <= links[0]["top"] and boxes["title"]["bottom"] <= links[0]["top"]
        current = page.locator(".site-nav a[aria-current=page]")
        assert current.count() == 1 and current.inner_text() == "About"
        page.locator(".site-nav a", has_text="Now").click()  # the last page of the menu: visible, clickable
        page.wait_for_url(site + "/now/")
        assert page.locator("h1").inner_text() == "Now"
        assert problems == []
    finally:
        context.close()
