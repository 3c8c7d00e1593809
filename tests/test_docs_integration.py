"""docs/integration.md is run as written (ports aside) against a real ``qiao serve``: every
command works, the retried POST writes once, a flow's task is completed and the receiver
verifies each webhook."""

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
    script = script.replace("qiao serve &  ", f"{sys.executable} -m platform_core serve "
                            "> serve.log 2>&1 &\nfor i in $(seq 60); do curl -sf "
                            "$QIAO/healthz >/dev/null && break; sleep 0.5; done\n")
    script = script.replace("python3 receiver.py &", "python3 receiver.py > receiver.log "
                            "2>&1 &\nsleep 1\n")
    script = (script.replace("127.0.0.1:8000", f"127.0.0.1:{qiao}")
              .replace("8099", str(hook)))
    script = ("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n"
              f"export QIAO_PORT={qiao}\n" + script +
              "\nfor i in $(seq 40); do [ $(grep -c verified receiver.log) -ge 11 ] && break;"
              " sleep 0.5; done\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIAO_")}
    env |= {"QIAO_DATA_DIR": str(tmp_path / "data"), "QIAO_BACKGROUND_JOBS": "true",
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"}
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert out.count('"name":"张三"') >= 2 and "idempotent-replayed: true" in out
    assert '"code":"conflict"' in out
    log = (tmp_path / "receiver.log").read_text()
    received = [line for line in log.splitlines() if line.startswith(("verified", "REJECTED"))]
    assert "REJECTED" not in log
    assert sorted(received) == sorted([
        "verified record.created 1", "verified record.created 2", "verified record.created 3",
        "verified record.created 4", "verified record.updated 4", "verified record.updated 1",
        # the flow: start, the call, end; the task; the city it wrote
        "verified flow.step_entered 1", "verified flow.step_entered 1",
        "verified flow.step_entered 1", "verified task.completed 1",
        "verified record.updated 1"])
    assert '"status":"completed"' in out  # the customer's flow, after the task
