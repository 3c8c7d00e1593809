"""Fixtures of the rules-engine tests: the flow tests' ``bank`` world (app, ``case`` form,
roles) with the rules engine registered, a helper to dispatch the outbox, a test clock
and real loopback servers (HTTP receiver, SMTP sink)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine_rules.plugin import register_builtins
from platform_core.app import create_app
from platform_core.models import utcnow
from platform_core.outbox import Dispatcher
from platform_core.settings import load_settings
from tests.engine_flows.flows_setup import World, build_world
from tests.engine_rules.rules_setup import MONDAY_10H, Clock, Receiver, SmtpSink
from tests.security_setup import client_as

register_builtins()


@pytest.fixture
def app(db, tmp_path):
    return create_app(load_settings(data_dir=tmp_path, webhook_allow_hosts="127.0.0.1",
                                    rules_backoff_seconds=1, api_rate_per_minute=10**9),
                      db=db)


@pytest.fixture
def world(app, db) -> World:
    with client_as(app, db, "admin") as admin:
        yield build_world(app, db, admin)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """The flow API's clock, stopped at ``MONDAY_10H`` until a test moves it."""
    fixed = Clock(MONDAY_10H)
    monkeypatch.setattr("engine_flows.api.utcnow", fixed)
    return fixed


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


def dispatch(world: World, now=None) -> int:
    """Run the outbox dispatcher (webhook fan-out and rules) until nothing is due."""
    ctx = world.app.state.qiao
    dispatcher = Dispatcher.from_registry(ctx.db, context=ctx, worker_id="tests")
    total = 0
    while done := dispatcher.run_once(now=now or utcnow()):
        total += done
    return total
