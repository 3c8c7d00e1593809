"""``Idempotency-Key`` on any API POST: a retried request gets the first response again
and nothing is written twice.

Order of events for a POST under ``/api/`` carrying the header (ASGI middleware):
read the body → identify the caller from their credential (without it, pass through:
the guard refuses the request) → in one transaction, drop expired keys and claim
``(user, key)`` (a unique row; a concurrent claim loses) → if the key was used before:
same request → replay the stored status, headers and body (``Idempotent-Replayed:
true``); a different request → 422; still running → 409 ``idempotency_in_progress``,
or, after ``RUNNING_MAX`` (the first request's process was killed mid-way), 409
``idempotency_outcome_unknown`` → else run the request and store its response for
``TTL`` (a 5xx is not stored, so the retry runs again).

A request is the same when its method, path, query and body bytes are the same. The
stored body is sealed with the field-encryption keyring: a response may carry a secret
shown once (a new token, a one-time password, a webhook secret). ``qiao keys rotate``
re-encrypts the kept bodies with the rest (``rotation._rotate_responses``), so a retry
after rotation and the removal of the old key still gets its first answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from platform_core.models import IdempotencyKey, utcnow

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HEADER = b"idempotency-key"
TTL = timedelta(hours=24)
# a first request still "running" after this was cut off (its process killed): no API
# request runs this long, so the retry learns the outcome is unknown instead of waiting
RUNNING_MAX = timedelta(minutes=10)
MAX_KEY = 255
KEPT_HEADERS = {b"content-type", b"etag", b"location"}


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _problem(status: int, code: str, detail: str) -> tuple[int, list[tuple[bytes, bytes]],
                                                           bytes]:
    body = {"type": f"urn:qiao:problem:{code}", "title": "Idempotency-Key", "status": status,
            "detail": detail, "code": code}
    return status, [(b"content-type", b"application/problem+json")], json.dumps(
        body, ensure_ascii=False).encode()


class Idempotency:
    """The middleware. ``identify(scope) -> user id | None`` names the caller."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, db: Any, keyring: Any,
                 identify: Callable[[Scope], int | None]):
        self.app, self.db, self.keyring, self.identify = app, db, keyring, identify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = None
        if scope["type"] == "http" and scope["method"] == "POST" and \
                scope["path"].startswith("/api/"):
            key = dict(scope["headers"]).get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        replay = _replayer(body)
        user_id = await run_in_threadpool(self.identify, scope)
        text = key.decode("latin-1").strip()
        if user_id is None or not text:
            await self.app(scope, replay, send)
            return
        if len(text) > MAX_KEY:
            await _send(send, *_problem(422, "invalid_input",
                                        f"Idempotency-Key: at most {MAX_KEY} characters"))
            return
        digest = hashlib.sha256(b"\0".join([scope["path"].encode(), scope.get(
            "query_string", b""), body])).hexdigest()
        outcome = await run_in_threadpool(self._claim, user_id, text, digest)
        if outcome is not None:
            await _send(send, *outcome)
            return
        await self._run(scope, replay, send, user_id, text)

    def _claim(self, user_id: int, key: str, digest: str
               ) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """None when this request runs; else the response to send instead."""
        now = utcnow()
        try:
            with self.db.write() as s:
                s.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at < now))
                row = s.execute(select(IdempotencyKey).where(
                    IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
                ).scalar_one_or_none()
                if row is None:
                    s.add(IdempotencyKey(user_id=user_id, key=key, request_hash=digest,
                                         expires_at=now + TTL, headers={}))
                    return None
                stored = (row.request_hash, row.status_code, dict(row.headers or {}),
                          self._open(user_id, row.body))
                started = row.created_at
        except IntegrityError:  # a concurrent first request claimed it a moment ago
            return _problem(409, "idempotency_in_progress", "a request with this "
                            "Idempotency-Key is still running; retry later")
        request_hash, status, headers, body = stored
        if request_hash != digest:
            return _problem(422, "idempotency_key_reused", "this Idempotency-Key was used "
                            "for a different request")
        if status is None and now - _aware(started) > RUNNING_MAX:
            return _problem(409, "idempotency_outcome_unknown", "the first request with "
                            "this Idempotency-Key was cut off before it answered: whether "
                            "it wrote anything is unknown. Look the result up (e.g. by a "
                            "unique field) before sending the request again under a new key")
        if status is None:
            return _problem(409, "idempotency_in_progress", "a request with this "
                            "Idempotency-Key is still running; retry later")
        pairs = [(k.encode(), v.encode()) for k, v in headers.items()]
        return status, [*pairs, (b"idempotent-replayed", b"true")], body.encode()

    async def _run(self, scope: Scope, receive: Receive, send: Send, user_id: int,
                   key: str) -> None:
        status, headers, chunks = 0, [], []

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() in KEPT_HEADERS]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            await run_in_threadpool(self._store, user_id, key, status, headers,
                                    b"".join(chunks))

    def _store(self, user_id: int, key: str, status: int, headers: list[tuple[bytes, bytes]],
               body: bytes) -> None:
        with self.db.write() as s:
            row = s.execute(select(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
            ).scalar_one_or_none()
            if row is None:
                return
            if not status or status >= 500:
                s.delete(row)  # let a retry run again
                return
            row.status_code = status
            row.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}
            row.body = json.dumps(self.keyring.seal(body.decode("utf-8", errors="replace"),
                                                    context=context(user_id)))

    def _open(self, user_id: int, stored: str | None) -> str:
        return "" if not stored else str(self.keyring.unseal(json.loads(stored),
                                                             context=context(user_id)))


def context(user_id: int) -> str:
    """What a kept response is sealed to (its user): ``qiao keys rotate`` re-seals with it."""
    return f"idempotency:{user_id}"


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replayer(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]],
                body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
