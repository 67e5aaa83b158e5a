"""Posts on disk, read with Flask-FlatPages and kept in an indexed, always-current store."""

from blog.content.post import Post, Term
from blog.content.store import Group, PostStore, Problem, Snapshot

__all__ = ["Group", "Post", "PostStore", "Problem", "Snapshot", "Term"]
