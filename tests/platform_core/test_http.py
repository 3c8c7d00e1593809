"""HTTP hardening: security headers, the request-body limit and the rate limiter."""

from __future__ import annotations

import threading

import anyio
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient

from platform_core.errors import DomainError
from platform_core.http import (
    CSP,
    BodySizeLimit,
    RateLimited,
    RateLimiter,
    install_hardening,
    retry_after_header,
)
from platform_core.settings import load_settings

LIMIT = 4096
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "content-security-policy": CSP,
}


def make_app(tmp_path, base_url: str = "http://127.0.0.1:8000", **kwargs) -> FastAPI:
    """A tiny app shaped like Qiao's: problem+json handlers, a catch-all 500."""
    app = FastAPI()
    settings = load_settings(data_dir=tmp_path, base_url=base_url, max_request_bytes=LIMIT)
    install_hardening(app, settings, **kwargs)

    @app.exception_handler(DomainError)
    async def _domain(_request: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(exc.problem(), status_code=exc.status,
                            headers=retry_after_header(exc))

    @app.exception_handler(Exception)
    async def _crash(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse({"code": "internal_error"}, status_code=500)

    @app.get("/ok")
    def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/api/items")
    def items() -> dict[str, list[int]]:
        return {"items": [1]}

    @app.get("/api/cached")
    def cached() -> Response:
        return Response("x", headers={"Cache-Control": "max-age=60"})

    @app.get("/framed")
    def framed() -> Response:
        return Response("x", headers={"X-Frame-Options": "SAMEORIGIN"})

    @app.get("/docs/index")
    def docs() -> dict[str, str]:
        return {"docs": "here"}

    @app.get("/limited")
    def limited() -> None:
        raise RateLimited(retry_after=2.2)

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("boom")

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.post("/json")
    def parse(payload: dict) -> dict[str, int]:
        return {"keys": len(payload)}

    return app


@pytest.fixture
def client(tmp_path):
    with TestClient(make_app(tmp_path), raise_server_exceptions=False) as c:
        yield c


# -- security headers -------------------------------------------------------------------

@pytest.mark.parametrize(("path", "status"), [("/ok", 200), ("/nowhere", 404),
                                              ("/limited", 429), ("/crash", 500)])
def test_every_response_carries_the_security_headers(client, path, status):
    r = client.get(path)
    assert r.status_code == status
    for name, value in HEADERS.items():
        assert r.headers[name] == value, name
    assert "strict-transport-security" not in r.headers  # served over plain http
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    assert "unsafe-eval" not in r.headers["content-security-policy"]


def test_hsts_only_when_served_over_https(tmp_path):
    with TestClient(make_app(tmp_path, base_url="https://qiao.example")) as c:
        assert c.get("/ok").headers["strict-transport-security"] == "max-age=31536000"


def test_api_responses_are_not_cached_unless_the_app_says_so(client):
    assert client.get("/api/items").headers["cache-control"] == "no-store"
    assert client.get("/api/nowhere").headers["cache-control"] == "no-store"
    assert client.get("/api/cached").headers["cache-control"] == "max-age=60"
    assert "cache-control" not in client.get("/ok").headers


def test_a_header_the_app_set_wins_and_is_not_duplicated(client):
    r = client.get("/framed")
    assert r.headers.get_list("x-frame-options") == ["SAMEORIGIN"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_csp_can_be_overridden_per_path_prefix(tmp_path):
    overrides = {"/docs": "default-src 'self' cdn.example", "/docs/index": "default-src 'none'"}
    with TestClient(make_app(tmp_path, csp_overrides=overrides)) as c:
        assert c.get("/docs/index").headers["content-security-policy"] == "default-src 'none'"
        assert c.get("/docs/other").headers["content-security-policy"] == overrides["/docs"]
        assert c.get("/ok").headers["content-security-policy"] == CSP


def test_rate_limited_error_carries_retry_after(client):
    r = client.get("/limited")
    assert r.headers["retry-after"] == "3"
    assert r.json() | {"retry_after": 3, "code": "rate_limited", "status": 429} == r.json()


# -- body size limit --------------------------------------------------------------------

def assert_too_large(r) -> None:
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"type": "urn:qiao:problem:payload_too_large", "title": "Payload too large",
                        "status": 413, "detail": "the request body is larger than the limit "
                                                 "of 4 KB",
                        "code": "payload_too_large", "limit_bytes": LIMIT}
    assert r.headers["x-content-type-options"] == "nosniff"  # refused inside the headers


def test_a_declared_length_over_the_limit_is_refused(client):
    assert_too_large(client.post("/echo", content=b"x" * (LIMIT + 1)))


def test_a_body_at_or_under_the_limit_passes(client):
    assert client.post("/echo", content=b"x" * (LIMIT - 1)).json() == {"size": LIMIT - 1}
    assert client.post("/echo", content=b"x" * LIMIT).json() == {"size": LIMIT}


def chunks(total: int, size: int = 1000):
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


@pytest.mark.parametrize("path", ["/echo", "/json"])
def test_a_chunked_body_over_the_limit_is_refused(client, path):
    # A generator body goes out chunked, without Content-Length; /json also proves that
    # FastAPI's "error parsing the body" 400 is replaced by the 413.
    r = client.post(path, content=chunks(LIMIT + 1), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_too_large(r)


def test_a_chunked_body_under_the_limit_passes(client):
    assert client.post("/echo", content=chunks(LIMIT - 10)).json() == {"size": LIMIT - 10}


def run_asgi(app, messages: list[dict]) -> tuple[list[dict], int]:
    """Drive an ASGI app with the given request messages; return what it sent, and reads."""
    sent: list[dict] = []
    reads = 0

    async def receive() -> dict:
        nonlocal reads
        reads += 1
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    anyio.run(app, scope, receive, send)
    return sent, reads


def test_chunked_reading_stops_at_the_limit():
    async def reader(_scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read it all"})

    body = [{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 10
    sent, reads = run_asgi(BodySizeLimit(reader, max_bytes=1024), body)
    assert reads == 2  # the second chunk passes 1024: nothing further is read
    assert sent[0]["status"] == 413 and len(sent) == 2


def test_a_response_already_started_is_aborted():
    async def streamer(_scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (await receive()).get("more_body"):
            await send({"type": "http.response.body", "body": b".", "more_body": True})

    body = [{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 10
    with pytest.raises(Exception) as info:  # noqa: B017 - the private abort type
        run_asgi(BodySizeLimit(streamer, max_bytes=1024), body)
    assert type(info.value).__name__ == "_BodyTooLarge"


# -- rate limiter -----------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_allows_the_limit_then_refuses_with_a_wait():
    clock = FakeClock()
    limiter = RateLimiter(5, 60, clock=clock)
    assert [limiter.hit("ip") for _ in range(5)] == [None] * 5
    wait = limiter.hit("ip")
    assert wait is not None and 0 < wait <= 12  # one token comes back every 60/5 s
    clock.now += wait
    assert limiter.hit("ip") is None
    assert limiter.hit("ip") is not None


def test_allows_a_full_window_again_after_it_passes():
    clock = FakeClock()
    limiter = RateLimiter(3, 10, clock=clock)
    assert [limiter.hit("k") for _ in range(4)][-1] is not None
    clock.now += 10
    assert [limiter.hit("k") for _ in range(3)] == [None] * 3
    assert limiter.hit("k") is not None


def test_keys_are_independent():
    limiter = RateLimiter(1, 60, clock=FakeClock())
    assert limiter.hit("alice") is None
    assert limiter.hit("alice") is not None
    assert limiter.hit("bob") is None


def test_memory_is_bounded_by_max_keys_evicting_the_oldest():
    limiter = RateLimiter(1, 60, clock=FakeClock(), max_keys=3)
    for key in "abcdef":
        limiter.hit(key)
    assert len(limiter) == 3
    assert limiter.hit("a") is None  # evicted, so forgotten
    assert limiter.hit("f") is not None  # still remembered


def test_idle_keys_are_forgotten():
    clock = FakeClock()
    limiter = RateLimiter(2, 60, clock=clock)
    for i in range(1000):
        limiter.hit(f"ip{i}")
    clock.now += 60
    limiter.hit("fresh")
    assert len(limiter) == 1


def test_concurrent_hits_never_exceed_the_limit():
    limiter = RateLimiter(100, 3600, clock=FakeClock())
    allowed: list[bool] = []

    def hammer() -> None:
        allowed.extend(limiter.hit("shared") is None for _ in range(100))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 100 and len(allowed) == 800


def test_rate_limited_rounds_retry_after_up():
    exc = RateLimited(retry_after=0.2)
    assert exc.retry_after == 1 and isinstance(exc.retry_after, int)
    assert exc.problem()["retry_after"] == 1 and exc.problem()["status"] == 429
    assert RateLimited(retry_after=59.01).retry_after == 60


@pytest.mark.parametrize("bad", [(0, 60), (5, 0)])
def test_rejects_a_meaningless_limit(bad):
    with pytest.raises(ValueError):
        RateLimiter(*bad)
