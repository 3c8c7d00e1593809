"""Manual rules (issue 18): the templated messages a person sends about one record from
its page — offered per form with whether their channel is set up, previewed for the
record, sent once per nonce through the rule engine (a pending action run for the
sender, like any rule's outside message) and audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from engine_forms import service
from engine_forms.forms import published
from engine_forms.service import Caller
from engine_rules import manual
from engine_rules import service as rules
from engine_rules.models import ActionRun, RuleRun
from engine_rules.plugin import register_builtins
from platform_core.errors import InvalidInput, NotFound
from platform_core.models import utcnow
from platform_core.security.models import AuditEntry, User
from platform_core.security.principal import load_principal
from platform_core.settings import load_settings
from templates_catalog.bundle import template
from templates_catalog.install import install
from tests.frontend.conftest import add_user
from tests.security_setup import SYSTEM

register_builtins()


@pytest.fixture
def crm(db) -> dict[str, Any]:
    with db.write() as s:
        install(s, template("bank_intermediary_crm"), actor=SYSTEM,
                template="bank_intermediary_crm")
    add_user(db, "xiao.wang", roles=("sales",))
    with db.write() as s:
        user = s.execute(select(User).where(User.username == "xiao.wang")).scalar_one()
        principal = load_principal(s, user, via="test")
        caller = Caller(principal, principal.access("crm", "customer"), None)
        customer = service.create(s, caller, published(s, "crm", "customer"),
                                  {"name": "张三", "mobile": "13800001234"})
    return {"db": db, "actor": principal.actor, "customer": customer["id"]}


def _send(crm: dict[str, Any], key: str = "sms_greeting", nonce: str = "n1",
          form: str = "customer", record_id: int | None = None) -> RuleRun:
    with crm["db"].write() as s:
        return manual.send(s, app="crm", form=form, key=key,
                           record_id=record_id or crm["customer"], actor=crm["actor"],
                           nonce=nonce, now=utcnow(), keyring=None, client="test")


def test_the_forms_manual_rules_are_offered_with_their_channels_state(crm):
    bare = load_settings(sms_gateway_url="")
    with crm["db"].read() as s:
        offered = manual.offered(s, "crm", "customer", bare)
        ready = manual.offered(s, "crm", "customer",
                               load_settings(sms_gateway_url="http://127.0.0.1:9/sms"))
        cases = manual.offered(s, "crm", "loan_case", bare)
    assert {m.key for m in offered} == {"sms_ask_documents", "sms_greeting"}
    assert all(not m.ready and m.missing == ("sms",) for m in offered)
    assert all(m.ready for m in ready)
    assert {m.key for m in cases} == {"sms_case_documents", "wecom_case_update"}


def test_a_preview_renders_the_message_for_the_record(crm):
    with crm["db"].read() as s:
        actions = manual.preview(s, app="crm", form="customer", key="sms_greeting",
                                 record_id=crm["customer"], actor=crm["actor"],
                                 now=utcnow(), keyring=None)
    assert actions[0]["channel"] == "sms" and actions[0]["to"] == ["13800001234"]
    assert actions[0]["body"].startswith("张三您好")


def test_a_send_queues_the_message_once_per_nonce_and_is_audited(crm):
    run = _send(crm)
    again = _send(crm)  # the same click posted twice
    assert run.status == "done" and again.actions[0]["status"] == "already_done"
    with crm["db"].read() as s:
        sent = list(s.execute(select(ActionRun)).scalars())
        audits = list(s.execute(select(AuditEntry).where(
            AuditEntry.action == "rule.manual_run")).scalars())
    assert len(sent) == 1 and sent[0].status == "pending"
    assert sent[0].request["to"] == ["13800001234"] and "张三" in sent[0].request["body"]
    assert len(audits) == 2 and audits[0].target == f"crm.customer/{crm['customer']}"
    assert audits[0].detail["rule"] == "sms_greeting"
    _send(crm, nonce="n2")
    with crm["db"].read() as s:
        assert len(list(s.execute(select(ActionRun)).scalars())) == 2


@pytest.mark.parametrize("nonce", ["aB3_x-Y9", "Zk_3tQ-9aWm_Lx0PqR8vYw"])
def test_a_nonce_as_the_message_page_makes_it_is_accepted(crm, nonce):
    """The page's nonce is URL-safe base64 (``secrets.token_urlsafe``): with a ``_`` in
    it (about 3 sends in 10) the send was refused."""
    assert _send(crm, nonce=nonce).status == "done"


def test_only_an_enabled_manual_rule_of_the_records_form_runs(crm):
    with pytest.raises(NotFound):
        _send(crm, key="next_follow_up")  # a rule, but not a manual one
    with pytest.raises(NotFound):
        _send(crm, key="sms_case_documents")  # manual, but for loan cases
    with pytest.raises(NotFound):
        _send(crm, key="nothing_like_it")
    with crm["db"].write() as s:
        rules.set_enabled(s, "crm", "sms_greeting", False, SYSTEM)
    with pytest.raises(NotFound):
        _send(crm)
    with pytest.raises(InvalidInput):
        _send(crm, key="sms_ask_documents", nonce="no spaces allowed")


def test_a_manual_rule_whose_condition_fails_says_so_and_sends_nothing(crm):
    raw = {"key": "vip_only", "name": "只发给 A 级客户", "trigger": {"type": "manual",
                                                              "form": "customer"},
           "condition": 'level = "a"',
           "actions": [{"type": "notify", "channel": "in_app", "to": {"owner": True},
                        "template": "{{ record.name }}"}]}
    with crm["db"].write() as s:
        rules.save(s, app="crm", raw=raw, actor=SYSTEM)
    with pytest.raises(InvalidInput, match="条件不满足"):
        _send(crm, key="vip_only")
    with crm["db"].read() as s:
        assert s.execute(select(RuleRun)).first() is None


def test_a_manual_trigger_needs_its_form(crm):
    raw = {"key": "nowhere", "name": "无表单", "trigger": {"type": "manual"},
           "actions": [{"type": "notify", "channel": "in_app", "to": {"owner": True},
                        "template": "x"}]}
    with crm["db"].write() as s, pytest.raises(InvalidInput, match="manual needs 'form'"):
        rules.save(s, app="crm", raw=raw, actor=SYSTEM)
