"""The ``wangp`` command line: thin Typer commands over :mod:`wangp_cli.core`."""

from wangp_cli.cli._app import app, main

__all__ = ["app", "main"]
