"""``python -m blog``: the ``flask blog`` commands without flask's --app option."""

from __future__ import annotations

from flask.cli import ScriptInfo

from blog import create_app
from blog.cli import blog_cli


def main() -> None:
    """Run the blog command group against the app built from the BLOG_* environment."""
    blog_cli.main(prog_name="python -m blog", obj=ScriptInfo(create_app=create_app))


if __name__ == "__main__":
    main()
