"""docs/integration.md is run as written (ports aside) against a real ``qiao serve --demo``:
every command works, the retried POST writes once, the loan flow of a new customer's case
is started and its first task completed, and the receiver verifies each webhook."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "integration.md"
# what the receiver must verify, once each: the customers (created, bulk, upserted, patched,
# and marked 跟进中 by a rule when the loan case came), the case, its flow's first steps
EVENTS = [*["record.created customer"] * 4, *["record.updated customer"] * 3,
          "record.created loan_case", *["flow.step_entered loan_case"] * 3,
          "record.updated loan_case", "task.completed loan_case"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_integration_walk_through_runs(tmp_path, database_url):
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    if database_url.startswith("postgresql"):
        pytest.skip("the walk-through is the same on any database: run once, on SQLite")
    qiao, hook = _port(), _port()
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    script = "\n".join(blocks)
    script = script.replace("qiao serve --demo &", f"{sys.executable} -m platform_core serve "
                            "--demo > serve.log 2>&1 &\nfor i in $(seq 240); do curl -sf "
                            "$QIAO/healthz >/dev/null && break; sleep 0.5; done\n")
    script = script.replace("python3 receiver.py &", "python3 receiver.py > receiver.log "
                            "2>&1 &\nsleep 1\n")
    script = (script.replace("127.0.0.1:8000", f"127.0.0.1:{qiao}")
              .replace("8099", str(hook)))
    # the walk-through waits until the dispatcher has worked through the demo's own events
    # (the rules' updates of demo customers among them) before it subscribes the receiver
    script = ("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n"
              f"export QIAO_PORT={qiao}\n" + script +
              f"\nfor i in $(seq 360); do [ $(grep -c verified receiver.log) -ge {len(EVENTS)} ]"
              " && break; sleep 0.5; done\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIAO_")}
    env |= {"QIAO_DATA_DIR": str(tmp_path / "data"), "QIAO_BACKGROUND_JOBS": "true",
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.count('"name":"张三"') >= 2 and "idempotent-replayed: true" in out
    assert '"code":"conflict"' in out
    assert '"status":"running"' in out and "产品匹配" in out  # the case, after its task
    assert "需求分析" in out  # the funnel
    log = (tmp_path / "receiver.log").read_text()
    received = [line.split()[:3] for line in log.splitlines()
                if line.startswith(("verified", "REJECTED"))]
    assert "REJECTED" not in log
    assert sorted(received) == sorted(["verified", *e.split()] for e in EVENTS), log
