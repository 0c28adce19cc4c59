"""Which part of a ``where:function`` spec names a file (no torch: the run config uses it to
store such paths absolute before anything heavy is imported)."""

from __future__ import annotations


def is_file_location(where: str) -> bool:
    """``where`` (the part of a spec before ``:function``) is a file path, not a module path."""
    return where.endswith(".py") or "/" in where or "\\" in where
