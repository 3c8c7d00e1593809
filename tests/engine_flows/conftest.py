"""Fixtures of the flow-engine tests: a running app with the ``bank`` world."""

from __future__ import annotations

import pytest

from engine_flows.plugin import register_builtins
from platform_core.app import create_app
from platform_core.settings import load_settings
from tests.engine_flows.flows_setup import MONDAY, Clock, World, build_world
from tests.security_setup import client_as

register_builtins()


@pytest.fixture(scope="session")
def flows_app(_migrated, tmp_path_factory):
    """One app for the whole run: FastAPI builds each app's routes on its first request
    (a third of a second), and the database under it is emptied after every test. Token
    ids restart with every emptied database, so the per-token rate limit is lifted."""
    settings = load_settings(data_dir=tmp_path_factory.mktemp("flows"),
                             api_rate_per_minute=10**9)
    return create_app(settings, db=_migrated)


@pytest.fixture
def app(flows_app, db):  # noqa: ARG001 - db: emptied after the test
    return flows_app


@pytest.fixture
def world(app, db) -> World:
    with client_as(app, db, "admin") as admin:
        yield build_world(app, db, admin)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The flow API's clock, stopped at ``MONDAY`` until a test moves it."""
    fixed = Clock(MONDAY)
    monkeypatch.setattr("engine_flows.api.utcnow", fixed)
    return fixed
