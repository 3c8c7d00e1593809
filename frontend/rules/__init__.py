"""The rule pages: list, editor, run log, dead letters (``frontend.rules.pages``)."""
