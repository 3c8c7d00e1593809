"""Shared helpers of the rules-engine tests: save rules through the API, change records
the way a person does (PATCH with ``If-Match``), read what the rules did (notifications,
run log, action runs), a second form ``visit`` linking to ``case``, and real loopback
servers for the outside channels (HTTP receiver, SMTP sink)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from sqlalchemy import func, select

from engine_rules.models import ActionRun, Notification, RuleRun
from engine_rules.sender import send_due
from platform_core.models import Record
from tests.engine_flows.flows_setup import API, APP, World, ok

RULES = f"{APP}/rules"
DEAD = f"{APP}/rules-dead-letters"
CASES = f"{APP}/forms/case/records"
VISITS = f"{APP}/forms/visit/records"

# A Monday, 10:00 in Asia/Shanghai (02:00 UTC)
MONDAY_10H = datetime(2031, 3, 3, 2, 0, tzinfo=UTC)

ALICE = {"strategy": "users", "users": ["alice"]}
SERVICE: dict[str, Any] = {
    "key": "svc", "name": "贷后服务", "form": "case",
    "nodes": [{"id": "start", "type": "start"},
              {"id": "docs", "type": "user_task", "name": "收集资料", "assignee": ALICE},
              {"id": "review", "type": "approval", "name": "审核", "mode": "single",
               "assignee": ALICE, "sla": {"hours": 4}},
              {"id": "end", "type": "end"}, {"id": "refused", "type": "end"}],
    "edges": [{"from": "start", "to": "docs"}, {"from": "docs", "to": "review"},
              {"from": "review", "to": "end", "on": "approve"},
              {"from": "review", "to": "refused", "on": "reject"}]}

VISIT_FORM: dict[str, Any] = {
    "key": "visit", "name": "回访", "title_field": "subject",
    "fields": [
        {"key": "subject", "label": "主题", "type": "text", "required": True},
        {"key": "case", "label": "案件", "type": "relation", "target": "case",
         "on_delete": "set_blank"},
        {"key": "status", "label": "状态", "type": "text"},
        {"key": "tags", "label": "标签", "type": "multiselect",
         "options": [{"value": "vip", "label": "高价值"}, {"value": "dormant", "label": "沉睡"},
                     {"value": "new", "label": "新客"}]},
        {"key": "email", "label": "邮箱", "type": "email"},
    ]}


def add_rule(world: World, status: int = 201, **spec: Any) -> Any:
    """POST a rule (``name`` defaults to its key); the answer."""
    spec.setdefault("name", spec.get("key", "rule"))
    return ok(world.admin.post(RULES, json=spec), status)


def put_rule(world: World, key: str, status: int = 200, **spec: Any) -> Any:
    spec.setdefault("name", key)
    return ok(world.admin.put(f"{RULES}/{key}", json={"key": key, **spec}), status)


def patch(world: World, record_id: int, form: str = "case", **data: Any) -> dict[str, Any]:
    """Change a record through the API, as a person does (``If-Match``)."""
    url = f"{APP}/forms/{form}/records/{record_id}"
    etag = world.admin.get(url).headers["etag"]
    return ok(world.admin.patch(url, json=data, headers={"If-Match": etag}))


def remove(world: World, record_id: int, form: str = "case") -> None:
    ok(world.admin.delete(f"{APP}/forms/{form}/records/{record_id}"), 204)


def visit_form(world: World) -> None:
    ok(world.admin.post(f"{APP}/forms", json=VISIT_FORM), 201)
    ok(world.admin.post(f"{APP}/forms/visit/publish"))


def visit(world: World, **data: Any) -> int:
    data.setdefault("subject", "回访")
    return ok(world.admin.post(VISITS, json=data), 201)["id"]


def set_mobile(world: World, name: str, mobile: str) -> None:
    from platform_core.security.models import User

    with world.db.write() as s:
        s.get(User, world.users[name]).mobile = mobile


def notes(world: World) -> list[tuple[int, str, str]]:
    """Every in-app notification: (user, title, body), in order."""
    with world.db.read() as s:
        return [tuple(r) for r in s.execute(select(
            Notification.user_id, Notification.title, Notification.body)
            .order_by(Notification.id)).all()]


def bodies(world: World) -> list[str]:
    return [body for _user, _title, body in notes(world)]


def runs(world: World, key: str) -> list[dict[str, Any]]:
    """The rule's run log through the API, oldest first."""
    return list(reversed(ok(world.admin.get(f"{RULES}/{key}/runs"))["items"]))


def all_runs(world: World) -> list[RuleRun]:
    with world.db.read() as s:
        rows = list(s.execute(select(RuleRun).order_by(RuleRun.id)).scalars())
        s.expunge_all()
        return rows


def action_runs(world: World) -> list[ActionRun]:
    with world.db.read() as s:
        rows = list(s.execute(select(ActionRun).order_by(ActionRun.id)).scalars())
        s.expunge_all()
        return rows


def count_records(world: World, form: str) -> int:
    with world.db.read() as s:
        return s.execute(select(func.count()).select_from(Record).where(
            Record.form == form, Record.deleted_at.is_(None))).scalar_one()


def records(world: World, form: str) -> list[dict[str, Any]]:
    """Live records of ``form`` (their data, with ``id``), oldest first."""
    with world.db.read() as s:
        rows = s.execute(select(Record.id, Record.data).where(
            Record.form == form, Record.deleted_at.is_(None)).order_by(Record.id)).all()
    return [{"id": i, **d} for i, d in rows]


def send(world: World, now: datetime | None = None, **settings: Any) -> int:
    """One pass of the action sender with the app's settings changed by ``settings``;
    how many outside calls it tried."""
    ctx = world.app.state.qiao
    with httpx.Client(trust_env=False, follow_redirects=False) as client:
        return send_due(ctx.db, ctx.settings.model_copy(update=settings), client=client,
                        worker="tests", now=now or datetime.now(UTC))


class Clock:
    """A clock moved by hand (``now`` for dispatch, scans and the sender)."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


# -- a real HTTP receiver ---------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 recording every request and answering from ``plan``
    (status codes in turn; then ``default``, 200 unless changed)."""

    def __init__(self, reply: Callable[[dict[str, Any]], bytes] | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.plan: list[int] = []
        self.default = 200
        self.reply = reply
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = {"method": self.command, "path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()},
                           "body": body}
                with outer.lock:
                    outer.requests.append(request)
                    status = outer.plan.pop(0) if outer.plan else outer.default
                answer = b"down" if status >= 500 else (
                    outer.reply(request) if outer.reply else b"ok")
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_PUT = do_PATCH = do_GET = _any  # noqa: N815 - the http.server API

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def bodies(self) -> list[Any]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- a real SMTP sink -------------------------------------------------------------------------


class SmtpSink:
    """A tiny SMTP server on 127.0.0.1 (asyncio, on its own thread) keeping every message
    it accepts: ``messages`` holds (envelope sender, recipients, raw message); ``logins``
    the (user, password) of each ``AUTH PLAIN`` (any is accepted, except ``password``
    ``wrong``: 535)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[tuple[str, str]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(5), "the SMTP sink did not start"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _session(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        say("220 sink ESMTP")
        sender, rcpts = "", []
        try:
            while line := await reader.readline():
                verb = line.decode(errors="replace").strip()
                upper = verb.upper()
                if upper.startswith("EHLO"):
                    say("250-sink")
                    say("250 AUTH PLAIN")
                elif upper.startswith("HELO"):
                    say("250 sink")
                elif upper.startswith("AUTH PLAIN "):
                    _, user, password = base64.b64decode(verb[11:]).decode().split("\0")
                    self.logins.append((user, password))
                    say("535 bad credentials" if password == "wrong" else "235 OK")
                elif upper.startswith("MAIL FROM:"):
                    sender, rcpts = verb[10:].strip(" <>"), []
                    say("250 OK")
                elif upper.startswith("RCPT TO:"):
                    rcpts.append(verb[8:].strip(" <>"))
                    say("250 OK")
                elif upper == "DATA":
                    say("354 end with <CRLF>.<CRLF>")
                    await writer.drain()
                    data = bytearray()
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    self.messages.append((sender, list(rcpts), bytes(data)))
                    say("250 queued")
                elif upper == "QUIT":
                    say("221 bye")
                    await writer.drain()
                    break
                elif upper in ("RSET", "NOOP"):
                    say("250 OK")
                else:
                    say("502 not implemented")
                await writer.drain()
        finally:
            writer.close()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


__all__ = ["API", "APP", "ok"]
