"""Qiao's kernel: settings, database, the generic entity store, the app factory, the CLI."""

__version__ = "0.1.0"
