"""The driver: client threads doing what an integrator does — create and update customers,
log and delete follow-ups, open loan cases and start their flow, complete flow tasks,
import spreadsheets — against both web servers while they are being killed.

Every operation ends in the **ledger** as one entry with what the driver was told:
``ok`` (a 2xx, possibly after retries), ``refused`` (a 4xx: it must have had no effect)
or ``unknown`` (no answer in time: it may or may not have happened — but at most once).
Each entry names a marker the checks can find the effect by (a customer's mobile, a
follow-up's summary, a loan case's note, a city value, an import's name).

Retries are what a careful integrator does: a POST carries an ``Idempotency-Key`` and is
sent again with it (to the other server when one is down); an update carries
``If-Match`` and, on a conflict, the record is read again — if it already shows the new
value, the earlier try went through.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx

APP = "/apps/crm"
CUSTOMERS = f"{APP}/forms/customer/records"
FOLLOW_UPS = f"{APP}/forms/follow_up/records"
CASES = f"{APP}/forms/loan_case/records"
IN_PROGRESS_BUDGET = 20.0  # s of "still running" answers before the outcome is unknown


@dataclass
class Outcome:
    response: httpx.Response | None
    lost_contact: bool  # some try got no answer: that request may have run

    @property
    def ok(self) -> bool:
        return self.response is not None and self.response.status_code < 300

    @property
    def status(self) -> int | None:
        return None if self.response is None else self.response.status_code

    def json(self) -> Any:
        return self.response.json() if self.response is not None else None


class Api:
    """A retrying client over both web servers; counts what happened on the way."""

    def __init__(self, ports: list[int], token: str) -> None:
        self.clients = [httpx.Client(base_url=f"http://127.0.0.1:{p}/api/v1", timeout=20,
                                     headers={"Authorization": f"Bearer {token}"})
                        for p in ports]
        self.stats: Counter[str] = Counter()
        self.errors: list[str] = []  # 5xx answers, each named
        self._lock = threading.Lock()

    def count(self, what: str, detail: str | None = None) -> None:
        with self._lock:
            self.stats[what] += 1
            if detail:
                self.errors.append(detail)

    def call(self, method: str, path: str, *, key: str | None = None, budget: float = 90.0,
             headers: dict[str, str] | None = None, **kw: Any) -> Outcome:
        """Send until an answer other than a failure to answer, a 5xx or "in progress",
        over at most ``budget`` seconds (a restart takes a while on a busy machine)."""
        headers = dict(headers or {}) | ({"Idempotency-Key": key} if key else {})
        began, lost, busy_since = time.monotonic(), False, None
        pick = random.randrange(len(self.clients))
        while time.monotonic() - began < budget:
            client = self.clients[pick % len(self.clients)]
            try:
                r = client.request(method, path, headers=headers, **kw)
            except httpx.TransportError:
                lost, pick = True, pick + 1
                self.count("transport_errors")
                time.sleep(0.3)
                continue
            if r.status_code >= 500:
                lost, pick = True, pick + 1
                self.count("5xx", f"{method} {path}: {r.status_code} {r.text[:300]}")
                time.sleep(0.5)
                continue
            if r.status_code == 409 and _code(r) == "idempotency_outcome_unknown":
                self.count("stuck_idempotency_keys")  # cut off by a kill, long ago
                return Outcome(None, True)
            if r.status_code == 409 and _code(r) == "idempotency_in_progress":
                self.count("in_progress_answers")
                busy_since = busy_since or time.monotonic()
                if time.monotonic() - busy_since > IN_PROGRESS_BUDGET:
                    self.count("stuck_idempotency_keys")
                    return Outcome(None, True)
                time.sleep(1.0)
                continue
            if r.headers.get("idempotent-replayed") == "true":
                self.count("replayed")
            return Outcome(r, lost)
        return Outcome(None, True)

    def close(self) -> None:
        for client in self.clients:
            client.close()


def _code(r: httpx.Response) -> str | None:
    try:
        body = r.json()
    except ValueError:
        return None
    return body.get("code") if isinstance(body, dict) else None


@dataclass
class Entry:
    kind: str  # customer, city, follow_up, deleted, loan_case, flow, task, import
    marker: str
    state: str  # ok | refused | unknown
    ref: int | None = None  # the id the answer gave
    extra: dict[str, Any] = field(default_factory=dict)


class Ledger:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._lock = threading.Lock()

    def add(self, kind: str, marker: str, out: Outcome | str, ref: int | None = None,
            **extra: Any) -> Entry:
        state = out if isinstance(out, str) else (
            "ok" if out.ok else "unknown" if out.response is None else "refused")
        if state == "refused" and isinstance(out, Outcome):
            extra["answer"] = f"{out.status} {_code(out.response)}"
        entry = Entry(kind, marker, state, ref, extra)
        with self._lock:
            self.entries.append(entry)
        return entry

    def of(self, kind: str, state: str | None = None) -> list[Entry]:
        with self._lock:
            return [e for e in self.entries if e.kind == kind and state in (None, e.state)]

    def summary(self) -> Counter[str]:
        with self._lock:
            return Counter(f"{e.kind}:{e.state}" for e in self.entries)


@dataclass
class Pool:
    """What one client thread made and may act on next (no two threads share a record,
    so an update's If-Match only ever races the rules and the flows)."""

    customers: list[tuple[int, str]] = field(default_factory=list)
    follow_ups: list[tuple[int, str]] = field(default_factory=list)
    tasks: list[tuple[int, str]] = field(default_factory=list)  # (task id, node)


class Driver:
    WEIGHTS = {"customer": 25, "city": 20, "follow_up": 15, "delete": 5, "case": 15,
               "task": 15, "import": 5}

    def __init__(self, api: Api, ledger: Ledger, seed: int) -> None:
        self.api, self.ledger, self.seed = api, ledger, seed
        self.seq = itertools.count(1)
        self.today = date.today().isoformat()

    def run(self, index: int, stop: threading.Event) -> None:
        rnd, pool = random.Random(self.seed * 1000 + index), Pool()
        ops, weights = list(self.WEIGHTS), list(self.WEIGHTS.values())
        while not stop.is_set():
            getattr(self, f"op_{rnd.choices(ops, weights)[0]}")(pool, rnd)
            time.sleep(rnd.uniform(0, 0.05))

    # -- the operations -------------------------------------------------------------------

    def op_customer(self, pool: Pool, _rnd: random.Random) -> None:
        n = next(self.seq)
        mobile = f"13{n:09d}"
        out = self.api.call("POST", CUSTOMERS, key=f"c-{n}",
                            json={"name": f"客户{n}", "mobile": mobile, "city": f"S{n}"})
        entry = self.ledger.add("customer", mobile, out, out.json()["id"] if out.ok else None)
        if out.ok:
            pool.customers.append((entry.ref, mobile))

    def op_city(self, pool: Pool, rnd: random.Random) -> None:
        if not pool.customers:
            return self.op_customer(pool, rnd)
        record_id, mobile = rnd.choice(pool.customers)
        city, attempted = f"K{next(self.seq)}", False
        for _ in range(6):
            got = self.api.call("GET", f"{CUSTOMERS}/{record_id}")
            if not got.ok:
                break
            if got.json()["data"].get("city") == city:  # an earlier try went through
                self.ledger.add("city", f"{mobile}/{city}", "ok", record_id)
                return None
            out = self.api.call("PATCH", f"{CUSTOMERS}/{record_id}", json={"city": city},
                                headers={"If-Match": got.response.headers["etag"]})
            attempted = True
            if out.ok:
                self.ledger.add("city", f"{mobile}/{city}", out, record_id)
                return None
            if out.status not in (None, 409):  # 409: changed meanwhile (by a rule): again
                self.ledger.add("city", f"{mobile}/{city}", out, record_id)
                return None
        self.ledger.add("city", f"{mobile}/{city}", "unknown" if attempted else "refused",
                        record_id)
        return None

    def op_follow_up(self, pool: Pool, rnd: random.Random) -> None:
        if not pool.customers:
            return self.op_customer(pool, rnd)
        n = next(self.seq)
        summary = f"fu {n}"
        out = self.api.call("POST", FOLLOW_UPS, key=f"f-{n}", json={
            "customer": rnd.choice(pool.customers)[0], "summary": summary,
            "follow_date": self.today, "method": "phone"})
        entry = self.ledger.add("follow_up", summary, out, out.json()["id"] if out.ok else None)
        if out.ok:
            pool.follow_ups.append((entry.ref, summary))
        return None

    def op_delete(self, pool: Pool, rnd: random.Random) -> None:
        if not pool.follow_ups:
            return self.op_follow_up(pool, rnd)
        record_id, summary = pool.follow_ups.pop(rnd.randrange(len(pool.follow_ups)))
        out = self.api.call("DELETE", f"{FOLLOW_UPS}/{record_id}")
        if out.status == 404 and out.lost_contact:  # the earlier try deleted it
            self.ledger.add("deleted", summary, "ok", record_id)
        else:
            self.ledger.add("deleted", summary, out, record_id)
        return None

    def op_case(self, pool: Pool, rnd: random.Random) -> None:
        if not pool.customers:
            return self.op_customer(pool, rnd)
        n = next(self.seq)
        note, amount = f"lc {n}", rnd.choice(["300000.00", "800000.00", "1500000.00"])
        out = self.api.call("POST", CASES, key=f"l-{n}", json={
            "customer": rnd.choice(pool.customers)[0], "loan_type": "credit",
            "amount": amount, "note": note})
        self.ledger.add("loan_case", note, out, out.json()["id"] if out.ok else None,
                        amount=amount)
        if not out.ok:
            return None
        case_id = out.json()["id"]
        run = self.api.call("POST", f"{APP}/flows/loan_service/instances", key=f"s-{n}",
                            json={"record_id": case_id})
        self.ledger.add("flow", note, run, run.json()["id"] if run.ok else None,
                        record_id=case_id)
        if run.ok:
            pool.tasks.extend(_open_tasks(run.json()))
        return None

    def op_task(self, pool: Pool, rnd: random.Random) -> None:
        if not pool.tasks:
            return self.op_case(pool, rnd)
        task_id, node = pool.tasks.pop(rnd.randrange(len(pool.tasks)))
        outcome = rnd.choice(["submit", "lost"]) if node == "analysis" else "lost"
        data = ({"loan_type": "credit", "amount": "300000.00"} if outcome == "submit"
                else {"lost_reason": "chaos"})
        out = self.api.call("POST", f"/tasks/{task_id}/complete", key=f"t-{task_id}",
                            json={"outcome": outcome, "data": data})
        self.ledger.add("task", str(task_id), out, task_id, outcome=outcome, node=node)
        if out.ok:
            pool.tasks.extend(_open_tasks(out.json()["instance"]))
        return None

    def op_import(self, _pool: Pool, rnd: random.Random) -> None:
        n = next(self.seq)
        mobiles = [f"13{next(self.seq):09d}" for _ in range(rnd.randint(3, 12))]
        rows = "".join(f"导入{m},{m},I{m[-4:]}\n" for m in mobiles)
        name = f"imp {n}"
        body, ctype = multipart({"name": name}, "file", "chaos.csv",
                                ("姓名,手机,城市\n" + rows).encode())
        out = self.api.call("POST", f"{APP}/forms/customer/imports", key=f"i-{n}",
                            content=body, headers={"Content-Type": ctype})
        self.ledger.add("import", name, out, out.json()["id"] if out.ok else None,
                        mobiles=mobiles)


def _open_tasks(instance: dict[str, Any]) -> list[tuple[int, str]]:
    return [(t, step["node"]) for step in instance.get("current") or []
            for t in step.get("tasks") or []]


def multipart(fields: dict[str, str], name: str, filename: str,
              content: bytes) -> tuple[bytes, str]:
    """A multipart body built once, so a retry sends the very same bytes (the
    ``Idempotency-Key`` compares them; a new boundary would be a different request)."""
    boundary = "chaos" + "".join(random.choices("0123456789abcdef", k=24))
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
             .encode() for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                 f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n'.encode()
                 + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), \
        f"multipart/form-data; boundary={boundary}"
