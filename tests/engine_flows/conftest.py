"""Fixtures of the flow-engine tests: a running app with the ``bank`` world."""

from __future__ import annotations

import pytest

from engine_flows.plugin import register_builtins
from platform_core.app import create_app
from platform_core.settings import load_settings
from tests.engine_flows.flows_setup import World, build_world
from tests.security_setup import client_as

register_builtins()


@pytest.fixture
def app(db, tmp_path):
    return create_app(load_settings(data_dir=tmp_path), db=db)


@pytest.fixture
def world(app, db) -> World:
    with client_as(app, db, "admin") as admin:
        yield build_world(app, db, admin)
