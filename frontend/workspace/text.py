"""UI text of the workspace pages through the installation's gettext catalogues."""

from __future__ import annotations

try:
    from frontend.i18n import gettext
except ImportError:  # catalogues not installed yet: the message ids are the Chinese text
    def gettext(message: str) -> str:
        return message

_ = gettext
