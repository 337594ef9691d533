"""The ``wfrun`` command line: `app` parses and calls a backend, `render` draws what it returns."""

from .app import app, main

__all__ = ["app", "main"]
