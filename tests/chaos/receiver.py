"""The loopback receiver: a ``ThreadingHTTPServer`` in the test process that answers 204
to every POST and keeps what arrived — webhook deliveries on ``/hook`` (their event id,
delivery id and whether the signature holds) and the rules' outside calls on ``/rule``
(their ``X-Qiao-Action`` key and body)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from platform_core.webhooks.signing import verify


@dataclass(frozen=True)
class Arrival:
    path: str
    event_id: str | None  # the body's "id" (a webhook's event)
    delivery: str | None  # X-Qiao-Delivery
    action: str | None  # X-Qiao-Action (a rule's call)
    signed: bool | None  # the webhook signature holds (None: not a webhook)
    body: dict[str, Any]


class Receiver:
    """Start with ``start()``; ``secret`` (the webhook's) is set once it is known."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.secret: str | None = None
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._keep(self.path, dict(self.headers.items()), raw)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def start(self) -> Receiver:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _keep(self, path: str, headers: dict[str, str], raw: bytes) -> None:
        headers = {k.lower(): v for k, v in headers.items()}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"unparsed": raw.decode("utf-8", "replace")}
        signed = None
        if path == "/hook":
            signed = self.secret is not None and verify(
                self.secret, headers.get("x-qiao-timestamp", ""), raw,
                headers.get("x-qiao-signature", ""), tolerance=3600)
        arrival = Arrival(path, body.get("id") if isinstance(body, dict) else None,
                          headers.get("x-qiao-delivery"), headers.get("x-qiao-action"),
                          signed, body if isinstance(body, dict) else {"value": body})
        with self._lock:
            self.arrivals.append(arrival)

    def of(self, path: str) -> list[Arrival]:
        with self._lock:
            return [a for a in self.arrivals if a.path == path]

    def counts(self, path: str, key: str) -> Counter[str]:
        """How often each ``key`` value (event_id, action …) arrived on ``path``."""
        return Counter(getattr(a, key) for a in self.of(path))
