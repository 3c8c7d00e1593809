"""Metadata documents (rules, reports, dashboards …): JSON checked against the kind's
meta-schema, then built into its pydantic model — every problem named by its path, at
most 50, raised as the kind's own ``InvalidInput`` subclass."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from platform_core.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)
MAX_PROBLEMS = 50


class SpecError(InvalidInput):
    """A document that does not validate; ``problems`` names each one. Subclasses set
    ``code`` (``invalid_rule`` …) and ``what`` (the document's name in the message)."""

    code, what = "invalid_spec", "document"

    def __init__(self, problems: list[str]):
        super().__init__(f"the {self.what} has {len(problems)} problem(s): "
                         + "; ".join(problems[:5]), problems=problems)
        self.problems = problems


def _where(path: Sequence[Any], what: str) -> str:
    return ".".join(str(p) for p in path) or what


def parse_spec(model: type[M], schema: dict[str, Any], raw: Any,
               error: Callable[[list[str]], Exception], what: str) -> M:
    """``raw`` as a ``model``, or ``error(problems)``; ``what`` names the whole document
    in a problem about it ("rule", "report" …)."""
    validator = Draft202012Validator(schema)
    problems = [f"{_where(e.absolute_path, what)}: {e.message}"
                for e in sorted(validator.iter_errors(raw), key=lambda e: list(e.path))]
    if problems:
        raise error(problems[:MAX_PROBLEMS])
    try:
        return model.model_validate(raw)
    except ValidationError as exc:  # cross-field checks JSON Schema cannot express
        raise error([f"{_where(e['loc'], what)}: {e['msg'].removeprefix('Value error, ')}"
                     for e in exc.errors()][:MAX_PROBLEMS]) from None
