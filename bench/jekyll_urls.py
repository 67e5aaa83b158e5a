"""Compare the post and page URLs (and redirects) Jekyll writes for a site with the ones Quire serves for it.

    python -m bench.jekyll_urls SITE [SITE...]

Each SITE is copied to a temporary folder, given one extra page that lists every post's path and URL, and
built with ``jekyll build`` (Debian's ``jekyll`` package, with jekyll-redirect-from and jekyll-feed); Quire
is then started with ``BLOG_JEKYLL_SITE`` over the original folder. Jekyll is the oracle: the script prints,
per site, how many of Jekyll's post URLs Quire serves the same post at, how many ``redirect_from`` addresses
Quire answers with a 301 to the right post, and every difference.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

LISTING = "quire-post-urls.json"
URL_PLUGINS = ("jekyll-redirect-from", "jekyll-feed")
# A page Jekyll renders with the posts it read: relative path and URL of each (drafts too, with --drafts).
_LISTING_PAGE = """---
layout: null
render_with_liquid: true
permalink: /{name}
sitemap: false
---
{{"posts": [{{% for post in site.posts %}}[{{{{ post.relative_path | jsonify }}}}, {{{{ post.url | jsonify }}}}]{{% unless forloop.last %}},{{% endunless %}}{{% endfor %}}],
 "pages": [{{% for page in site.pages %}}[{{{{ page.path | jsonify }}}}, {{{{ page.url | jsonify }}}}]{{% unless forloop.last %}},{{% endunless %}}{{% endfor %}}]}}
"""
PAGE_EXTENSIONS = (".md", ".markdown", ".mkdown", ".mkdn", ".mkd", ".html")  # what Quire serves as a Jekyll site's pages


@dataclass
class Comparison:
    """What Jekyll wrote for a site and what Quire serves for it."""

    jekyll_urls: dict[str, str]  # post path inside the site -> URL, unescaped
    quire_urls: dict[str, str]
    redirects: dict[str, str]  # the posts' redirects: redirect_from path -> post URL, post URL -> redirect_to
    redirects_answered: int = 0
    redirect_misses: list[str] = field(default_factory=list)
    jekyll_pages: dict[str, str] = field(default_factory=dict)  # .md/.html page path inside the site -> URL
    quire_pages: dict[str, str] = field(default_factory=dict)
    pages_answered: int = 0  # Jekyll's page URLs Quire answers 200 with that page
    page_redirects: dict[str, str] = field(default_factory=dict)  # the pages' redirect_from and redirect_to
    page_redirects_answered: int = 0

    @property
    def matched(self) -> list[str]:
        """Return the posts Quire serves at Jekyll's URL."""
        return [path for path, url in self.jekyll_urls.items() if self.quire_urls.get(path) == url]

    @property
    def differences(self) -> list[tuple[str, str, str | None]]:
        """Return (post, Jekyll's URL, Quire's URL or None) for every post whose URL differs."""
        return [(path, url, self.quire_urls.get(path)) for path, url in sorted(self.jekyll_urls.items())
                if self.quire_urls.get(path) != url]

    @property
    def pages_matched(self) -> list[str]:
        """Return the pages (but the home page, which Quire keeps for its own) Quire serves at Jekyll's URL."""
        return [path for path, url in self.jekyll_pages.items() if url != "/" and self.quire_pages.get(path) == url]

    @property
    def page_differences(self) -> list[tuple[str, str, str | None]]:
        """Return (page, Jekyll's URL, Quire's URL or None) for every page but the home page whose URL differs."""
        return [(path, url, self.quire_pages.get(path)) for path, url in sorted(self.jekyll_pages.items())
                if url != "/" and self.quire_pages.get(path) != url]


def jekyll_available() -> bool:
    """Tell whether the ``jekyll`` command is installed."""
    return shutil.which("jekyll") is not None


def build_with_jekyll(site: Path, work: Path, drafts: bool = False) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Build a copy of ``site`` with Jekyll; return its post URLs, its redirects and its .md/.html pages' URLs (unescaped)."""
    source, destination = work / "source", work / "built"
    shutil.copytree(site, source, symlinks=True, ignore=shutil.ignore_patterns(".git", "_site", ".jekyll-cache"))
    (source / LISTING.replace(".json", ".html")).write_text(_LISTING_PAGE.format(name=LISTING), encoding="utf-8")
    _prepare_config(source)
    for name in ("Gemfile", "Gemfile.lock"):  # Debian's jekyll uses its own packaged gems, never bundler's
        (source / name).unlink(missing_ok=True)
    command = ["jekyll", "build", "--quiet", "--source", str(source), "--destination", str(destination)]
    if drafts:
        command.append("--drafts")
    environment = {**os.environ, "JEKYLL_ENV": "production", "TZ": os.environ.get("TZ", "UTC")}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"jekyll build failed for {site}:\n{result.stdout}\n{result.stderr}")
    listed = json.loads((destination / LISTING).read_text(encoding="utf-8"))
    urls = {path: unquote(url) for path, url in listed["posts"]}
    own = LISTING.replace(".json", ".html")
    pages = {path.lstrip("/"): unquote(url) for path, url in listed["pages"]  # not the plugins' own (redirect.html)
             if path.lower().endswith(PAGE_EXTENSIONS) and path.lstrip("/") != own and (source / path.lstrip("/")).is_file()}
    redirects: dict[str, str] = {}
    listing = destination / "redirects.json"
    if listing.is_file():
        home = urlsplit(_site_url(source)).netloc
        redirects = {unquote(origin): own_path(target, home)
                     for origin, target in json.loads(listing.read_text(encoding="utf-8")).items()}
    return urls, redirects, pages


def _prepare_config(source: Path) -> None:
    """Make a site's copy buildable with Debian's Jekyll without changing any post's URL.

    Only the plugins that change URLs are kept (jekyll-redirect-from, jekyll-feed; Debian lacks others such
    as jekyll-sitemap); layouts, includes and Liquid in posts and pages are left out (``render_with_liquid: false``,
    but for the URL listing), since a missing plugin's tag would stop the build. Dumping the YAML again also quotes
    ``permalink: :title``: Debian's Jekyll reads YAML with Psych, which takes that for a Ruby symbol and
    refuses it, where upstream's safe_yaml (and GitHub Pages) read the text ":title", as PyYAML does.
    """
    path = source / "_config.yml"
    config = (yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None) or {}
    plugins = [name for name in config.get("plugins") or config.get("gems") or [] if name in URL_PLUGINS]
    config["plugins"] = plugins
    config.pop("gems", None)
    config["defaults"] = [*(config.get("defaults") or []),
                          {"scope": {"path": ""}, "values": {"render_with_liquid": False}}]
    path.write_text(yaml.dump(config, Dumper=_QuotingDumper, allow_unicode=True, sort_keys=False), encoding="utf-8")
    for folder in ("_layouts", "_includes", "_plugins", "_sass"):
        shutil.rmtree(source / folder, ignore_errors=True)
    for stylesheet in (*source.rglob("*.scss"), *source.rglob("*.sass")):  # Debian's Sass is older than some sites'
        stylesheet.unlink()


class _QuotingDumper(yaml.SafeDumper):
    """Quote every text that starts with ':', so Psych reads it as text."""


_QuotingDumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style='"' if text.startswith(":") else None))


def own_path(url: str, home: str) -> str:
    """Return a URL of the site itself as its unescaped path; any other URL as it is."""
    parts = urlsplit(url)
    return unquote(parts.path) if not parts.netloc or parts.netloc == home else url


def _site_url(source: Path) -> str:
    config = yaml.safe_load((source / "_config.yml").read_text(encoding="utf-8")) if (source / "_config.yml").is_file() else {}
    return str((config or {}).get("url") or "")


def quire_urls(site: Path, **settings: str) -> tuple[dict[str, str], object]:
    """Return the URL Quire gives each post of ``site`` (published or not), and the app."""
    from blog import create_app

    app = create_app({"BLOG_JEKYLL_SITE": str(site), "BLOG_WATCH": "off", "BLOG_CACHE_DIR": "off", **settings})
    snapshot = app.extensions["quire"].snapshot
    found = {**{post.source: post.url for post in snapshot.hidden_by_url.values()},
             **{post.source: post.url for post in snapshot.by_url.values()}}
    return found, app


def quire_pages(app: object) -> dict[str, str]:
    """Return the URL Quire gives each page of the site (published or not)."""
    snapshot = app.extensions["quire.site"].pages.snapshot  # type: ignore[attr-defined]
    return {page.source: page.url for page in (*snapshot.hidden_by_url.values(), *snapshot.by_url.values())}


def compare(site: Path, drafts: bool = False, **settings: str) -> Comparison:
    """Build ``site`` with Jekyll and load it in Quire; return both sides and how Quire answers the redirects."""
    with tempfile.TemporaryDirectory(prefix="quire-jekyll-") as work:
        jekyll_side, redirects, jekyll_pages = build_with_jekyll(site, Path(work), drafts)
    quire_side, app = quire_urls(site, **settings)
    posts = set(jekyll_side.values())
    page_urls = {url for url in jekyll_pages.values() if url != "/"}
    page_redirects = {origin: target for origin, target in redirects.items()
                      if (target in page_urls or origin in page_urls) and target not in posts and origin not in posts}
    redirects = {origin: target for origin, target in redirects.items() if target in posts or origin in posts}
    comparison = Comparison(jekyll_side, quire_side, redirects, jekyll_pages=jekyll_pages, quire_pages=quire_pages(app),
                            page_redirects=page_redirects)
    client = app.test_client()  # type: ignore[attr-defined]
    pages = app.extensions["quire.site"]  # type: ignore[attr-defined]
    for path in comparison.pages_matched:
        page = pages.page_at(jekyll_pages[path])
        response = client.get(jekyll_pages[path])
        # A page with redirect_to answers a 301 there, as jekyll-redirect-from's page does.
        if page is not None and response.status_code == (301 if "redirect_to" in page.meta else 200):
            comparison.pages_answered += 1
        response.close()
    for origin, target in redirects.items():
        response = client.get(origin)
        location = own_path(response.headers.get("Location", ""), urlsplit(app.config["BLOG_URL"]).netloc)  # type: ignore[attr-defined]
        if response.status_code == 301 and location == target:
            comparison.redirects_answered += 1
        else:
            comparison.redirect_misses.append(f"{origin} -> {target}: {response.status_code} {location}")
    for origin, target in page_redirects.items():
        response = client.get(origin)
        location = own_path(response.headers.get("Location", ""), urlsplit(app.config["BLOG_URL"]).netloc)  # type: ignore[attr-defined]
        if response.status_code == 301 and location == target:
            comparison.page_redirects_answered += 1
        else:
            comparison.redirect_misses.append(f"{origin} -> {target} (a page's): {response.status_code} {location}")
    return comparison


def main(argv: list[str]) -> int:
    """Print the comparison for each site named on the command line."""
    if not jekyll_available():
        print("jekyll is not installed (apt-get install jekyll)", file=sys.stderr)
        return 2
    for name in argv:
        comparison = compare(Path(name).resolve())
        total = len(comparison.jekyll_urls)
        print(f"{name}: {len(comparison.matched)}/{total} post URLs identical, "
              f"{comparison.redirects_answered}/{len(comparison.redirects)} redirects answered with a 301 to their post")
        home = sum(url == "/" for url in comparison.jekyll_pages.values())
        print(f"{name}: {len(comparison.pages_matched)}/{len(comparison.jekyll_pages) - home} .md/.html page URLs "
              f"identical ({comparison.pages_answered} answered with the page, or its redirect_to's 301; "
              f"{home} home page, where Quire keeps its own); {comparison.page_redirects_answered}/"
              f"{len(comparison.page_redirects)} of their redirects answered with Jekyll's 301")
        for path, expected, got in (*comparison.differences, *comparison.page_differences):
            print(f"  {path}: jekyll {expected}  quire {got}")
        for miss in comparison.redirect_misses:
            print(f"  redirect {miss}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
