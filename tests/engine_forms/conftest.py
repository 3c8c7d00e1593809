"""Fixtures of the form engine's tests.

The field types and the expression functions (IF, SUM …) are registered when this module
is imported, as the app factory does at start-up (and like the value kinds in
tests/conftest.py): the contract tests are parametrised over the registry at collection
time, and ``meta_schema()`` is cached from it on first use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine_forms import fieldtypes
from platform_core.expressions.functions import register_builtins as register_functions
from platform_core.registry import Registry

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

fieldtypes.register_builtins()
register_functions()


@pytest.fixture(scope="session")
def field_types() -> Registry[Any]:
    """The field-type registry with every built-in type (registering is idempotent)."""
    fieldtypes.register_builtins()
    register_functions()
    return fieldtypes.FIELD_TYPES


@pytest.fixture
def loan_case_raw() -> dict[str, Any]:
    """tests/fixtures/loan_case.json, the example form of the issue, as parsed JSON."""
    return json.loads((FIXTURES / "loan_case.json").read_text(encoding="utf-8"))
