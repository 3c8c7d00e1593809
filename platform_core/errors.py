"""Domain errors. The API layer maps each to an RFC 9457 problem+json response."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error a user can cause. ``code`` is machine-readable and stable."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        # the standard members last: an extra named like one (``status``) cannot clobber it
        return {
            **self.extra,
            "type": f"urn:qiao:problem:{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }


class NotFound(DomainError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(DomainError):
    """A write carried a stale ``row_version``: someone else changed the record first."""

    status, code, title = 409, "conflict", "Conflict"


class InvalidInput(DomainError):
    status, code, title = 422, "invalid_input", "Invalid input"


class QueryError(InvalidInput):
    """A malformed filter, sort or cursor; ``path`` names the bad part."""

    code, title = "invalid_query", "Invalid query"

    def __init__(self, detail: str, *, path: str):
        super().__init__(f"{path}: {detail}", path=path)
