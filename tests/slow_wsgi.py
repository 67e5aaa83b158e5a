"""The site's WSGI app, with the test-only backtracking Pygments lexer registered (see tests/slow_inputs.py)."""

from tests.slow_inputs import register_lexer

register_lexer()

from wsgi import app  # noqa: E402 - after the lexer, which the render children inherit

__all__ = ["app"]
