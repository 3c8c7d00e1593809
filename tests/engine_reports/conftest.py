"""Fixtures of the report-engine tests: the flow tests' ones (one app for the run, the
``bank`` world, the test clock) with the report engine registered."""

from __future__ import annotations

from engine_reports.plugin import register_builtins
from tests.engine_flows.conftest import app, clock, flows_app, world  # noqa: F401

register_builtins()
