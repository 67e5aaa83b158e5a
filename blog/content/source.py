"""Reading one post file: size and encoding limits, and Jekyll front matter split from the body."""

from __future__ import annotations

import functools
import re
import sys
from dataclasses import dataclass
from typing import Any

import yaml

try:  # libyaml parses front matter about ten times faster; the pure loader gives the same data.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_FRONT_MATTER_NODES = 10_000
MAX_FRONT_MATTER_DEPTH = 32  # templates and JSON encoders recurse; no real front matter nests past a few levels
MAX_FRONT_MATTER_BYTES = 64 * 1024
_OPENING = re.compile(r"\A---[ \t]*\n")
_CLOSING = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)


class SourceError(ValueError):
    """A post file that cannot be read, with the line (1-based) where the trouble is."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Source:
    """The parts of a post file: its front matter mapping and its Markdown body."""

    meta: dict[str, Any]
    body: str
    body_line: int
    has_front_matter: bool
    front_matter: str = ""

    def line_of(self, key: str) -> int | None:
        """Return the file line on which front-matter ``key`` is set, if it is a top-level key."""
        pattern = re.compile(rf"^['\"]?{re.escape(key)}['\"]?\s*:")
        for number, line in enumerate(self.front_matter.split("\n"), start=2):
            if pattern.match(line):
                return number
        return None


def decode(data: bytes, max_size: int) -> str:
    """Return the text of a post file, or raise SourceError for sizes, NUL bytes and bad UTF-8."""
    if len(data) > max_size:
        raise SourceError(f"file is {len(data):,} bytes, over the {max_size:,}-byte limit (BLOG_MAX_POST_SIZE)")
    nul = data.find(b"\0")
    if nul >= 0:
        raise SourceError("file contains a NUL byte; is it a binary file?", _line_of(data, nul))
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SourceError(
            f"file is not valid UTF-8 (byte 0x{data[error.start]:02x}); save it as UTF-8",
            _line_of(data, error.start),
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def split(text: str) -> Source:
    """Split Jekyll front matter (between two '---' lines) from the body and parse it as YAML."""
    bounds = _front_matter_bounds(text)
    if bounds is None:
        return Source({}, text, 1, has_front_matter=False)
    start, end, body_start = bounds
    raw = text[start:end]
    body_line = text.count("\n", 0, body_start) + 1
    return Source(parse_front_matter(raw), text[body_start:], body_line, has_front_matter=True, front_matter=raw)


def body_of(text: str) -> tuple[str, int]:
    """Return the body of a post file's text and its first line, as ``split`` would, without parsing YAML."""
    bounds = _front_matter_bounds(text)
    if bounds is None:
        return text, 1
    body_start = bounds[2]
    return text[body_start:], text.count("\n", 0, body_start) + 1


def _front_matter_bounds(text: str) -> tuple[int, int, int] | None:
    """Return where the front matter starts and ends and where the body starts, or None without front matter."""
    opening = _OPENING.match(text)
    if not opening:
        return None
    closing = _CLOSING.search(text, opening.end())
    if closing is None:
        raise SourceError("front matter opened with '---' on line 1 is never closed with '---'", 1)
    return opening.end(), closing.start(), closing.end() + 1 if closing.end() < len(text) else closing.end()


def parse_front_matter(raw: str) -> dict[str, Any]:
    """Parse front matter YAML safely into a mapping; line numbers count the opening '---' as line 1."""
    if len(raw.encode("utf-8")) > MAX_FRONT_MATTER_BYTES:
        raise SourceError(f"front matter is over {MAX_FRONT_MATTER_BYTES // 1024} KB", 2)
    simple = parse_simple_front_matter(raw)
    if simple is not None:
        return simple
    try:
        meta = yaml.load(raw, Loader=_Loader)  # noqa: S506 - a safe loader, chosen above
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 2 if mark else 2
        column = mark.column + 1 if mark else None
        problem = error.problem or error.context or "invalid YAML"
        if error.context and error.context_mark is not None and error.context_mark.line != getattr(mark, "line", None):
            problem += f" ({error.context} that starts on line {error.context_mark.line + 2})"
        raise SourceError(f"invalid front matter: {problem}", line, column) from None
    except yaml.YAMLError as error:
        raise SourceError(f"invalid front matter: {error}", 2) from None
    except (ValueError, OverflowError) as error:  # a value YAML recognised but cannot build: 2020-02-30
        raise SourceError(f"invalid front matter: {error}", 2) from None
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise SourceError(f"front matter must be a mapping of keys to values, got a {type(meta).__name__}", 2)
    _check_size(meta)
    return {sys.intern(str(key)): value for key, value in meta.items()}  # one string per key name: see below


_STR = "tag:yaml.org,2002:str"
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp"))
# One ``key: value`` line, searched for through the whole front matter or matched against one line. Greedy,
# and the value's trailing blanks stripped after: a lazy value before optional blanks backtracks per character.
_SIMPLE_LINE = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:(?:[ \t]+(.*))?$", re.MULTILINE)
_PLAIN_UNSAFE = re.compile(r"""^[-?:,\[\]{}#&*!|>'"%@`]|: |\s#|:$|\t""")
_FLOW_ITEM_UNSAFE = re.compile(r"""[\[\]{}#'"]|: |:$|^[-?:&*!|>%@`]""")
_NON_STRING_KEYS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()
_RESOLVER_FIRST_CHARACTERS = frozenset(key for key in yaml.resolver.Resolver.yaml_implicit_resolvers if key)


class _NotSimple(Exception):
    pass


def parse_simple_front_matter(raw: str) -> dict[str, Any] | None:
    """Parse the common shape of front matter (``key: scalar`` and ``key: [a, b]`` lines) without a YAML parser.

    PyYAML builds every value with Python code even under libyaml, which is most of the start-up time at
    10,000 posts. Scalars are resolved and built by PyYAML's own resolver and constructors, so results are
    identical; anything else (block lists, nesting, quotes with escapes, anchors, tags) returns None and
    goes to the real parser.
    """
    if "\x85" in raw or "\u2028" in raw or "\u2029" in raw:  # line breaks to YAML, not to str.split or re
        return None
    lines = _simple_lines(raw)
    if lines is None:
        return None
    meta: dict[str, Any] = {}
    try:
        for number, key, value in lines:
            if key.lower() in _NON_STRING_KEYS:  # YAML 1.1 reads these keys as booleans or null
                return None
            try:
                # One string per key name, shared by every post's front matter: 100,000 posts' "title", "date"
                # and "tags" were 630,000 strings, 37 MB in each process that loads them (and 0.15 s of
                # unpickling the post cache, where each was a string of its own too).
                meta[sys.intern(key)] = _simple_value(value.rstrip(" \t"))
            except (ValueError, OverflowError) as error:  # a value YAML recognised but cannot build: 2020-02-30
                raise SourceError(f"invalid front matter: {key}: {error}", number) from None
    except _NotSimple:
        return None
    return meta


def _simple_lines(raw: str) -> list[tuple[int, str, str]] | None:
    """Return (file line, key, value) of every ``key: value`` line, or None if another kind of line is there."""
    pairs = _SIMPLE_LINE.findall(raw)  # one C pass; right as it is when every line is a key (the usual case)
    if len(pairs) == raw.count("\n") + (not raw.endswith("\n")):
        return [(number, key, value) for number, (key, value) in enumerate(pairs, start=2)]
    lines = []
    for number, line in enumerate(raw.split("\n"), start=2):  # blank and comment lines in between
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and not line[0].isspace()):
            continue
        match = _SIMPLE_LINE.fullmatch(line)
        if match is None:
            return None
        lines.append((number, match.group(1), match.group(2) or ""))
    return lines


def _simple_value(value: str) -> Any:
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"') or '"' in value[1:-1] or "\\" in value:
            raise _NotSimple
        return value[1:-1]
    if value.startswith("'"):
        if len(value) < 2 or not value.endswith("'") or "'" in value[1:-1]:
            raise _NotSimple
        return value[1:-1]
    if value.startswith("["):
        if not value.endswith("]"):
            raise _NotSimple
        inner = value[1:-1].strip()
        if not inner:
            return []
        return list(_flow_items(inner))  # a new list per post: front matter values may be changed by their user
    if value and _PLAIN_UNSAFE.search(value):
        raise _NotSimple
    return _resolve(value)


@functools.lru_cache(maxsize=4096)  # the same few categories and tags recur in every post
def _flow_items(inner: str) -> tuple[Any, ...]:
    items = [item.strip() for item in inner.split(",")]
    if any(not item or _FLOW_ITEM_UNSAFE.search(item) for item in items):
        raise _NotSimple
    return tuple(map(_resolve, items))


@functools.lru_cache(maxsize=4096)  # and the same authors and layouts; every value it returns is immutable
def _resolve(plain: str) -> Any:
    if plain and plain[0] not in _RESOLVER_FIRST_CHARACTERS:  # no implicit type starts this way: a string
        return plain
    tag = _resolver.resolve(yaml.ScalarNode, plain, (True, False))
    if tag == _STR:
        return plain
    if tag not in _SCALAR_TAGS:
        raise _NotSimple
    return _constructor.yaml_constructors[tag](_constructor, yaml.ScalarNode(tag, plain))


def _check_size(meta: dict[str, Any]) -> None:
    """Refuse front matter whose aliases or nesting expand past a sane number of values or depth."""
    count = 0
    stack: list[tuple[Any, int]] = [(meta, 1)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_FRONT_MATTER_NODES or len(stack) > MAX_FRONT_MATTER_NODES:
            raise SourceError(f"front matter expands to more than {MAX_FRONT_MATTER_NODES:,} values (YAML aliases?)", 2)
        if depth > MAX_FRONT_MATTER_DEPTH:
            raise SourceError(f"front matter is nested more than {MAX_FRONT_MATTER_DEPTH} levels deep", 2)
        if isinstance(value, dict):
            stack.extend((key, depth + 1) for key in value.keys())
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, (list, tuple, set)):
            stack.extend((item, depth + 1) for item in value)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1
