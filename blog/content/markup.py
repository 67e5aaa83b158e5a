"""Markdown to HTML with Python-Markdown and Pygments, after the common Jekyll Liquid tags."""

from __future__ import annotations

import html
import logging
import re
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import markdown
import yaml
from markdown.extensions.codehilite import CodeHiliteExtension
from markdown.extensions.toc import TocExtension

log = logging.getLogger("quire.content")

EXTENSIONS = (
    "markdown.extensions.extra",  # tables, footnotes, fenced code, attribute and definition lists, abbreviations
    "markdown.extensions.sane_lists",
)
LIQUID_TAG = re.compile(r"\{%-?\s*(\w+)(.*?)-?%\}", re.DOTALL)
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

PostUrlResolver = Callable[[str], "str | None"]


class Renderer:
    """Render post bodies; one Markdown instance per thread, since Markdown objects are not thread-safe."""

    def __init__(self, site_values: Mapping[str, Any]):
        self._site_values = dict(site_values)
        self._local = threading.local()

    def render(self, text: str, resolve: PostUrlResolver, page_values: Mapping[str, Any]) -> str:
        """Return the HTML of Markdown ``text`` after replacing the Liquid tags Quire knows."""
        engine = self._engine()
        try:
            return engine.convert(self.liquid(text, resolve, page_values))
        finally:
            engine.reset()

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
        engine = getattr(self._local, "engine", None)
        if engine is None:
            engine = markdown.Markdown(
                extensions=[
                    *EXTENSIONS,
                    CodeHiliteExtension(css_class="highlight", guess_lang=False),
                    TocExtension(permalink="#", permalink_class="anchor", permalink_title="Link to this section"),
                ],
                output_format="html",
            )
            self._local.engine = engine
        return engine


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
    if "{%" not in text:
        return []
    text = _RAW.sub("", text)
    return sorted({match.group(1) for match in LIQUID_TAG.finditer(text)} - KNOWN_LIQUID_TAGS)


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
