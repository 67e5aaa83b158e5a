"""Markdown to HTML with Python-Markdown and Pygments, after the common Jekyll Liquid tags."""

from __future__ import annotations

import html
import logging
import pickle
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import markdown
import yaml
from markdown.extensions.codehilite import CodeHiliteExtension
from markdown.extensions.toc import TocExtension
from pygments.formatters.html import HtmlFormatter

from blog.content import isolation, jekyll

log = logging.getLogger("quire.content")

EXTENSIONS = (
    "markdown.extensions.extra",  # tables, footnotes, fenced code, attribute and definition lists, abbreviations
    "markdown.extensions.sane_lists",
    "markdown.extensions.admonition",  # !!! note "Title"
    "pymdownx.details",  # ??? note "Summary": a <details> block (raw <details markdown="1"> works too)
    "pymdownx.tasklist",  # - [x] done / - [ ] to do
    "blog.content.authoring",  # math to MathML, GitHub's > [!NOTE] callouts, task list labels
)
# Plain data, so any process (a render child too) builds the very same engine from it.
EXTENSION_CONFIGS: dict[str, dict[str, Any]] = {
    "pymdownx.tasklist": {"custom_checkbox": False, "clickable_checkbox": False},
}
LIQUID_TAG = re.compile(r"\{%-?\s*(\w+)((?:(?!\{%).)*?)-?%\}", re.DOTALL)  # never across another {%: linear
LIQUID_OUTPUT = re.compile(r"\{\{-?\s*((?:[^}'\"]|'[^']*'|\"[^\"]*\")+?)\s*-?\}\}")
_PIPE = re.compile(r"""\|(?=(?:[^'"]|'[^']*'|"[^"]*")*$)""")  # a | outside quotes
_ARGUMENT = re.compile(r"""\s*('[^']*'|"[^"]*"|[\w.-]+)\s*(?:,|$)""")
_RAW = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", re.DOTALL)
_HIGHLIGHT = re.compile(
    r"\{%-?\s*highlight\s+([\w+#.-]+)([^%]*?)-?%\}\n?(.*?)\{%-?\s*endhighlight\s*-?%\}", re.DOTALL
)
_RAW_TOKEN = "\x02raw{}\x03"
KNOWN_LIQUID_TAGS = frozenset({"raw", "endraw", "highlight", "endhighlight", "post_url", "link", "assign", "for",
                               "endfor"})
_MISSING = object()

RENDER_SECONDS = 2.0  # a post's Markdown must render within this, or it is shown as escaped text
MAX_IDLE_ENGINES = 8
# Python-Markdown scans ahead from every '[' and '(' for its closing mate, so thousands of unclosed ones in
# a post cost quadratic time (10,000 unclosed '[' take half a minute); nesting costs recursion depth.
MAX_UNCLOSED = 500
MAX_NESTING = 100
MAX_UNCLOSED_BLOCKS = 20  # each unclosed Liquid block is scanned to the end of the post
_LIQUID_BLOCK = re.compile(r"\{%-?\s*(end)?(?:raw|highlight|for)\b")
_INDENT = re.compile(r"^(?:[ \t]*>)*[ \t]*", re.MULTILINE)

PostUrlResolver = Callable[[str], "str | None"]


def _failure(reason: str, lasting: bool = True) -> RenderError:
    return RenderError(f"{reason}; shown as plain text", lasting)


RenderPending = isolation.RenderPending  # the caller stopped waiting; the render goes on (see Renderer.render)


class RenderError(Exception):
    """A post body that could not be rendered in time or at all; the site shows it as escaped text instead.

    ``lasting`` is False when it says nothing of the post (its render process got no CPU in time): this
    response shows the text, and the next one renders the post again.
    """

    def __init__(self, message: str, lasting: bool = True):
        super().__init__(message)
        self.message = message
        self.lasting = lasting


class Renderer:
    """Render post bodies within a deadline, in a child process that is killed if it overruns (see isolation).

    Markdown objects are not thread-safe, so each render takes its own engine.
    """

    def __init__(self, site_values: Mapping[str, Any], sanitize: bool = False, budget: float = RENDER_SECONDS,
                 extensions: tuple[str, ...] = (), isolated: bool | None = None,
                 memory_mb: int = isolation.RENDER_MEMORY_MB):
        self._site_values = dict(site_values)
        self._extensions = extensions  # more Python-Markdown extensions, by name (the Jekyll dialect's)
        self.sanitize = sanitize
        self.budget = budget
        self.memory_mb = memory_mb
        # In a child process where one can be had; in a thread (which cannot be stopped) where not.
        self.isolated = isolation.available() if isolated is None else isolated
        self._engines: list[markdown.Markdown] = []
        self._engines_lock = threading.Lock()
        self.settings = pickle.dumps((self._site_values, sanitize, extensions), protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_settings(cls, settings: bytes) -> Renderer:
        """Return a renderer made from another's ``settings`` (plain data): how a render child makes its own."""
        site_values, sanitize, extensions = pickle.loads(settings)  # noqa: S301 - our own parent's
        return cls(site_values, sanitize=sanitize, extensions=extensions, isolated=False)

    def render(self, text: str, resolve: PostUrlResolver, page_values: Mapping[str, Any], *, raw_html: bool = False,
               wait: float | None = None, keep: tuple[str, str, str] | None = None,
               late: Callable[[str | RenderError], None] | None = None) -> str:
        """Return the HTML of Markdown ``text`` after the Liquid tags Quire knows; raise RenderError past the budget.

        ``raw_html`` text (a ``.html`` post or page) gets the Liquid tags only, as Jekyll renders it: through
        Markdown, its indented lines would become code blocks and a first line of text a paragraph.

        The render runs in a child process (isolation.RenderPool) that is killed when it overruns the budget
        or its memory cap, whatever it is doing. The caller blocks for ``wait`` seconds at most (None: the
        whole budget): past that, RenderPending is raised, the render goes on, and ``late`` is told its HTML
        or RenderError; ``keep`` names the render cache entry the child writes as soon as it finishes. Inputs
        known to take quadratic time are refused up front: a cheap early exit, not the guarantee.
        """
        reason = pathological(text)
        if reason is not None:
            raise RenderError(f"not rendered: {reason}")
        if not self.isolated:
            return self._render_in_thread(text, resolve, page_values, raw_html)
        # The child's copy of the posts is as old as the child: the parent resolves the links, with today's.
        links = {name: resolve(name) for name in linked_posts(text)}
        if late is not None:
            def told(outcome: str | isolation.RenderFailed) -> None:
                late(outcome if isinstance(outcome, str) else _failure(outcome.message, outcome.lasting))
        try:
            return isolation.pool().render(self.settings, text, page_values, links, self.budget, self.memory_mb,
                                           wait, keep, told if late is not None else None, raw_html=raw_html)
        except isolation.RenderFailed as failed:
            raise _failure(failed.message, failed.lasting) from None

    def _render_in_thread(self, text: str, resolve: PostUrlResolver, page_values: Mapping[str, Any],
                          raw_html: bool) -> str:
        """Render in a thread abandoned past the budget: where no child process can be had (no fork)."""
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["html"] = self.convert(text, resolve, page_values, raw_html)
            except Exception as error:  # noqa: BLE001 - any failure (RecursionError too) is this post's problem
                outcome["error"] = error

        worker = threading.Thread(target=run, name="quire-render", daemon=True)
        worker.start()
        worker.join(self.budget)
        if worker.is_alive():
            raise _failure(f"rendering took longer than {self.budget:g} s")
        if "error" in outcome:
            error = outcome["error"]
            raise _failure(f"rendering failed ({type(error).__name__}: {str(error)[:200]})")
        return outcome["html"]

    def convert(self, text: str, resolve: PostUrlResolver, page_values: Mapping[str, Any],
                raw_html: bool = False) -> str:
        """Return the HTML of ``text`` rendered here and now, with no deadline (a render child's job)."""
        if raw_html:
            html = finish_html(self.liquid(text, resolve, page_values))
        else:
            html = self._convert(text, resolve, page_values)
        return clean(html) if self.sanitize else html

    def _convert(self, text: str, resolve: PostUrlResolver, page_values: Mapping[str, Any]) -> str:
        with self._engines_lock:
            engine = self._engines.pop() if self._engines else None
        if engine is None:
            engine = self._engine()
        result = finish_html(engine.convert(self.liquid(text, resolve, page_values)))
        engine.reset()
        with self._engines_lock:  # an engine whose render raised is dropped, never reused half-reset
            if len(self._engines) < MAX_IDLE_ENGINES:
                self._engines.append(engine)
        return result

    def liquid(self, text: str, resolve: PostUrlResolver, page_values: Mapping[str, Any]) -> str:
        """Return ``text`` with Jekyll's raw, highlight, post_url, link and site/page variables applied."""
        if "{" not in text:
            return text
        raw_blocks: list[str] = []

        def keep_raw(match: re.Match[str]) -> str:
            raw_blocks.append(match.group(1))
            return _RAW_TOKEN.format(len(raw_blocks) - 1)

        text = _RAW.sub(keep_raw, text)
        text = _HIGHLIGHT.sub(_fenced, text)
        variables: dict[str, Any] = {}
        # Left to right, as Liquid runs: an assign is seen by the loops and outputs after it.
        text = _LOOP_OR_ASSIGN.sub(lambda match: self._statement(match, variables, page_values), text)
        text = LIQUID_TAG.sub(lambda match: self._tag(match, resolve), text)
        text = LIQUID_OUTPUT.sub(lambda match: self._output(match, page_values, variables), text)
        for index, block in enumerate(raw_blocks):
            text = text.replace(_RAW_TOKEN.format(index), block)
        return text

    def _tag(self, match: re.Match[str], resolve: PostUrlResolver) -> str:
        name, argument = match.group(1), match.group(2).strip()
        if name == "post_url":
            return resolve(argument) or match.group(0)
        if name == "link":
            target = argument.split()[0] if argument else ""
            resolved = resolve(target)
            if resolved:
                return resolved
            return self._site_values.get("baseurl", "") + "/" + target.lstrip("/") if target else match.group(0)
        return match.group(0)

    def _statement(self, match: re.Match[str], variables: dict[str, Any], page_values: Mapping[str, Any]) -> str:
        if match.group("assign_name"):
            value = self.evaluate(match.group("assign_value"), page_values, variables)
            if value is _MISSING:
                return match.group(0)
            variables[match.group("assign_name")] = value
            return ""
        items = self._lookup(match.group("items"), page_values, variables)
        if not isinstance(items, (list, tuple)):
            return match.group(0)
        name, body, rendered = match.group("item"), match.group("body"), []
        for item in items:
            scope = {**variables, name: item}
            text = _LOOP_OR_ASSIGN.sub(lambda inner: self._statement(inner, scope, page_values), body)
            rendered.append(LIQUID_OUTPUT.sub(lambda inner: self._output(inner, page_values, scope), text))
        return "".join(rendered)

    def _output(self, match: re.Match[str], page_values: Mapping[str, Any], variables: Mapping[str, Any]) -> str:
        value = self.evaluate(match.group(1), page_values, variables)
        if value is _MISSING or isinstance(value, Mapping):
            return match.group(0)  # left visible, as Quire does with everything it cannot render
        text = "".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        return html.escape(text, quote=True)

    def evaluate(self, expression: str, page_values: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        """Return the value of a Liquid expression with filters, or _MISSING if any part is unknown."""
        head, *filters = (part.strip() for part in _PIPE.split(expression))
        value = self._operand(head, page_values, variables)
        for entry in filters:
            name, _, raw_arguments = entry.partition(":")
            if value is _MISSING and name.strip() != "default":  # default is how an author handles a missing value
                break
            arguments = [self._operand(argument, page_values, variables)
                         for argument in _ARGUMENT.findall(raw_arguments)] if raw_arguments.strip() else []
            apply = _FILTERS.get(name.strip())
            if apply is None or _MISSING in arguments:
                return _MISSING
            try:
                value = apply(self._site_values, value, *arguments)
            except (TypeError, ValueError, IndexError):
                return _MISSING
        return value

    def _operand(self, token: str, page_values: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        token = token.strip()
        if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
            return token[1:-1]
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        return self._lookup(token, page_values, variables)

    def _lookup(self, name: str, page_values: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        scope, _, key = name.partition(".")
        if scope in variables:
            value = variables[scope]
            return value if not key else (value.get(key, _MISSING) if isinstance(value, Mapping) else _MISSING)
        if scope == "site" and key in self._site_values:
            return self._site_values[key]
        if scope == "page" and key in page_values and isinstance(page_values[key], (str, int, float, list)):
            return page_values[key]
        return _MISSING

    def _engine(self) -> markdown.Markdown:
        return markdown.Markdown(
            extension_configs=EXTENSION_CONFIGS,
            extensions=[
                *EXTENSIONS,
                *self._extensions,
                CodeHiliteExtension(css_class="highlight", guess_lang=False, pygments_formatter=_CodeFormatter),
                TocExtension(permalink="#", permalink_class="anchor", permalink_title="Link to this section"),
            ],
            output_format="html",
        )


class _CodeFormatter(HtmlFormatter):  # type: ignore[type-arg]
    """Pygments' HTML formatter with its token-to-class tables made once per style, not once per code block.

    Pygments makes them in each formatter's constructor (a walk over the style's 80-odd token types), and
    CodeHilite makes a formatter for every block: a fifth of a code-heavy post's render went there.
    """

    _tables: ClassVar[dict[tuple[Any, str], tuple[dict[Any, str], dict[str, Any]]]] = {}

    def __init__(self, lang_str: str = "", **options: Any):  # CodeHilite names the language; HTML has no use for it
        super().__init__(**options)

    def _create_stylesheet(self) -> None:
        key = (self.style, self.classprefix)
        tables = self._tables.get(key)
        if tables is None:
            super()._create_stylesheet()
            self._tables[key] = (self.ttype2class, self.class2style)  # read only from here on
        else:
            self.ttype2class, self.class2style = tables


_IMG = re.compile(r"<img\b([^>]*?)(\s*/?)>", re.IGNORECASE)
_CENTER = re.compile(r"<(/?)center\b([^>]*)>", re.IGNORECASE)
_ALIGN_STYLE = re.compile(r'\sstyle="text-align: ?(left|right|center);?"')
_SCROLLER = re.compile(r"<(pre|table)((?:\s[^>]*)?)>")
# A comment, a raw-text element whole (skipped), or a start or end tag: (/)(name)(/) of the last.
_TAG_TOKEN = re.compile(r"<!--.*?(?:-->|$)|<(?:script|style|textarea)\b.*?(?:</(?:script|style|textarea)\s*>|$)"
                        r"|<(/?)([a-zA-Z][a-zA-Z0-9:-]*)(?:\s[^<>]*?)?(/?)>", re.DOTALL | re.IGNORECASE)
_VOID_ELEMENTS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                            "track", "wbr"})
_OPTIONAL_END = frozenset({"p", "li", "dt", "dd", "tr", "td", "th", "option", "rt", "rp"})
_IMG_DEFAULTS = (("loading", "lazy"), ("decoding", "async"), ("referrerpolicy", "no-referrer"))


def is_html(relative: str) -> bool:
    """Tell whether a post or page file is written in HTML (Jekyll's ``.html``, ``.htm``, ``.xhtml``), not Markdown."""
    return relative.lower().endswith(jekyll.HTML_EXTENSIONS)


def finish_html(html: str) -> str:
    """Return rendered HTML fit for the theme: lazy, referrer-less images, no obsolete or inline-styled markup.

    Authors' raw HTML and Markdown's table alignment would otherwise break the page's validity
    (``<center>``) or be dropped by the Content-Security-Policy (``style`` attributes); code samples are
    escaped by then, so only real tags match.
    """
    def image(match: re.Match[str]) -> str:
        attributes = match.group(1)
        lowered = attributes.lower()
        extra = "".join(f' {name}="{value}"' for name, value in _IMG_DEFAULTS if f"{name}=" not in lowered)
        return f"<img{attributes}{extra}{match.group(2)}>"

    if "<img" in html or "<IMG" in html:
        html = _IMG.sub(image, html)
    if "<center" in html.lower():
        html = _CENTER.sub(_center_to_div, html)
    if 'style="text-align' in html:
        html = _ALIGN_STYLE.sub(lambda match: f' class="align-{match.group(1)}"', html)
    # Code and tables scroll sideways inside themselves on narrow screens; keyboard users must reach them.
    return _SCROLLER.sub(lambda match: match.group(0) if "tabindex" in match.group(2)
                         else f'<{match.group(1)} tabindex="0"{match.group(2)}>', html)


def balanced(fragment: str) -> str:
    """Return an HTML fragment with its unclosed elements closed at the end and its stray end tags dropped.

    For excerpts, cut from a post at a blank line that may fall inside the author's own HTML: shown in a
    listing, an open ``<div>`` or ``<a>`` would take in the posts after it (an ``<a>`` even past an end tag of
    the element holding it, as browsers reopen it), and a stray ``</div>`` would close the listing's own. Elements whose end tag HTML lets one leave out (``<p>``, ``<li>``...) end where the next
    of their kind starts; comments and the text of ``<script>``, ``<style>`` and ``<textarea>`` are skipped.
    """
    if "<" not in fragment:
        return fragment
    opened: list[str] = []
    parts: list[str] = []
    kept = 0
    for match in _TAG_TOKEN.finditer(fragment):
        closing, name, empty = match.group(1), (match.group(2) or "").lower(), match.group(3)
        if not name or name in _VOID_ELEMENTS or (empty and not closing):  # a comment, raw text, <br>, <x/>
            continue
        if not closing:
            if name in _OPTIONAL_END and opened and opened[-1] == name:
                opened.pop()
            opened.append(name)
        elif name in opened:  # what it closes on the way is closed by name: an <a> left open would be reopened
            inner = []
            while (top := opened.pop()) != name:
                inner.append(f"</{top}>")
            if inner:
                parts.append(fragment[kept:match.start()] + "".join(inner))
                kept = match.start()
        else:
            parts.append(fragment[kept:match.start()])
            kept = match.end()
    if not parts and not opened:
        return fragment
    parts.append(fragment[kept:])
    parts.extend(f"</{name}>" for name in reversed(opened))
    return "".join(parts)


def _center_to_div(match: re.Match[str]) -> str:
    closing, attributes = match.groups()
    return "</div>" if closing else f'<div class="center"{attributes}>'


def pathological(text: str) -> str | None:
    """Return why ``text`` would take Markdown unbounded time or depth to render, or None; linear in the text."""
    # Every post passes through here when it is loaded, so the common case is decided by one C-speed pass:
    # a text with no more than MAX_UNCLOSED opening marks in all cannot leave that many unclosed.
    data = text.encode("utf-8", "surrogatepass")
    if len(data) - len(data.translate(None, b"[(<{")) > MAX_UNCLOSED:
        for opening, closing in (("[", "]"), ("(", ")"), ("<", ">"), ("{%", "%}"), ("{{", "}}")):
            unclosed = text.count(opening) - text.count(closing)
            if unclosed > MAX_UNCLOSED:
                return f"{unclosed:,} unclosed '{opening}' (more than {MAX_UNCLOSED})"
    if "%" in text and text.count("{%") > MAX_UNCLOSED_BLOCKS:  # one memchr rules out most posts
        blocks = _LIQUID_BLOCK.findall(text)
        unclosed = sum(1 for end in blocks if not end) - sum(1 for end in blocks if end)
        if unclosed > MAX_UNCLOSED_BLOCKS:
            return f"{unclosed:,} unclosed Liquid raw, highlight or for blocks (more than {MAX_UNCLOSED_BLOCKS})"
    if text.count(">") <= MAX_NESTING and " " * MAX_NESTING not in text and "\t" * (MAX_NESTING // 4) not in text:
        return None  # too few markers or too little indentation to nest that deep: skip the line scan at load
    deepest = max((len(match.group(0).expandtabs(4)) for match in _INDENT.finditer(text)), default=0)
    quotes = max((match.group(0).count(">") for match in _INDENT.finditer(text)), default=0)
    if quotes > MAX_NESTING or deepest > 4 * MAX_NESTING:
        return f"nested more than {MAX_NESTING} levels deep"
    return None


# Tags and attributes Markdown (with Quire's extensions and Pygments) produces; anything else in a post is
# dropped when BLOG_SANITIZE is on. Links keep http(s), mailto and relative URLs only.
_SANITIZE_ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height", "loading", "decoding", "referrerpolicy"},
    "th": {"align"},
    "td": {"align"},
    "ol": {"start"},
    "abbr": {"title"},
    "input": {"type", "checked", "disabled", "aria-label"},  # task list checkboxes
    "math": {"display", "alttext"},
    **{tag: {"mathvariant", "stretchy", "fence", "separator", "lspace", "rspace", "columnalign", "rowspacing",
             "columnspacing", "displaystyle", "scriptlevel", "width", "height", "depth", "notation", "accent",
             "accentunder", "movablelimits", "minsize", "maxsize", "linethickness", "symmetric", "largeop", "form",
             "rowlines", "columnlines", "frame", "rowalign", "encoding"}
       for tag in ("mi", "mn", "mo", "ms", "mtext", "mspace", "mrow", "msup", "msub", "msubsup", "munder", "mover",
                   "munderover", "mfrac", "msqrt", "mroot", "mtable", "mtr", "mtd", "mstyle", "menclose", "mpadded",
                   "mphantom", "semantics", "annotation", "merror", "mmultiscripts", "mprescripts", "none")},
}


def clean(fragment: str) -> str:
    """Return ``fragment`` with scripts, event handlers, styles and unsafe URLs removed (nh3)."""
    import nh3  # only sites that turn BLOG_SANITIZE on pay for loading it

    return nh3.clean(fragment, tags=nh3.ALLOWED_TAGS | set(_SANITIZE_ATTRIBUTES) - {"*"}, attributes=_SANITIZE_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer nofollow")


def jekyll_site_values(path: str) -> dict[str, Any]:
    """Return the top-level text, number and list values of a Jekyll ``_config.yml``, for ``{{ site.* }}``."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        # Posts still render (the variables stay visible); one line says why, as for a bad post.
        log.error("%s: cannot use BLOG_JEKYLL_CONFIG: %s", path, str(error).replace("\n", " "))
        return {}
    if not isinstance(config, dict):
        log.error("%s: cannot use BLOG_JEKYLL_CONFIG: not a mapping of settings", path)
        return {}
    return {str(key): value for key, value in config.items()
            if isinstance(value, (str, int, float)) and not isinstance(value, bool)
            or isinstance(value, list) and all(isinstance(item, (str, int, float)) for item in value)}


def unknown_liquid_tags(text: str) -> list[str]:
    """Return the Liquid tags in ``text`` (outside raw blocks) that Quire leaves as they are."""
    if "%" not in text or "{%" not in text:  # the first is a memchr, far faster than a two-character search
        return []
    # One pass over the tags, skipping raw blocks, rather than a raw-block regex that rescans from every
    # unclosed {% raw %} (quadratic in a hostile post, and this runs for every post at load).
    found: set[str] = set()
    in_raw = False
    for match in LIQUID_TAG.finditer(text):
        name = match.group(1)
        if in_raw:
            in_raw = name != "endraw"
        elif name == "raw":
            in_raw = True
        else:
            found.add(name)
    return sorted(found - KNOWN_LIQUID_TAGS)


def linked_posts(text: str) -> tuple[str, ...]:
    """Return the names the ``post_url`` and ``link`` tags of ``text`` look up: the posts its HTML depends on."""
    if "%" not in text or "{%" not in text:
        return ()
    names = {match.group(2).strip() if match.group(1) == "post_url" else (match.group(2).split() or [""])[0]
             for match in LIQUID_TAG.finditer(text) if match.group(1) in {"post_url", "link"}}
    return tuple(sorted(names))


_LOOP_OR_ASSIGN = re.compile(
    r"\{%-?\s*for\s+(?P<item>\w+)\s+in\s+(?P<items>[\w.]+)\s*-?%\}\n?(?P<body>.*?)\{%-?\s*endfor\s*-?%\}\n?"
    r"|\{%-?\s*assign\s+(?P<assign_name>\w+)\s*=\s*(?P<assign_value>(?:[^%'\"]|'[^']*'|\"[^\"]*\")+?)\s*-?%\}\n?",
    re.DOTALL,
)


def _relative_url(site: Mapping[str, str], value: Any) -> str:
    text = str(value)
    if "://" in text or text.startswith("//"):
        return text
    return site.get("baseurl", "") + "/" + text.lstrip("/")


def _slug(site: Mapping[str, str], value: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(value).lower()).strip("-")


def _blank(value: Any) -> bool:
    """Tell whether Liquid's default filter replaces ``value``: missing, nil, false or empty; 0 is a value."""
    return value is _MISSING or value is None or value is False or (isinstance(value, (str, list)) and not value)


# The Jekyll and Liquid filters that turn up in posts; anything else leaves the expression visible.
_FILTERS: dict[str, Callable[..., Any]] = {
    "relative_url": _relative_url,
    "absolute_url": lambda site, value: _relative_url(site, value) if "://" in str(value)
    else site.get("url", "") + _relative_url(site, value),
    "prepend": lambda site, value, prefix: f"{prefix}{value}",
    "append": lambda site, value, suffix: f"{value}{suffix}",
    "split": lambda site, value, separator: str(value).split(str(separator)),
    "join": lambda site, value, separator=" ": str(separator).join(map(str, value)),
    "slugify": _slug,
    "downcase": lambda site, value: str(value).lower(),
    "upcase": lambda site, value: str(value).upper(),
    "capitalize": lambda site, value: str(value)[:1].upper() + str(value)[1:],
    "strip": lambda site, value: str(value).strip(),
    "uri_escape": lambda site, value: urllib.parse.quote(str(value), safe="!#$&'()*+,/:;=?@[]~"),
    "url_encode": lambda site, value: urllib.parse.quote_plus(str(value)),
    "size": lambda site, value: len(value),
    "first": lambda site, value: value[0],
    "last": lambda site, value: value[-1],
    "default": lambda site, value, fallback: fallback if _blank(value) else value,
}


def _fenced(match: re.Match[str]) -> str:
    language, code = match.group(1), match.group(3)
    fence = "~~~~" if "```" in code else "```"
    return f"\n{fence}{language}\n{code.rstrip()}\n{fence}\n"
