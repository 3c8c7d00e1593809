"""The processes under test: two ``qiao serve`` web servers (background jobs off, as in
production beside a worker) and one ``qiao worker``, on one PostgreSQL database and one
data directory. Each is a child process that can be SIGKILLed and started again.

The children get a clean environment: every ``QIAO_*`` of the caller is dropped, and the
settings a crash test needs are set (loopback webhooks allowed, short retry delays, no
per-token rate limit in the way of the driver). They run in the data directory, so no
stray ``.env`` is read.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PASSWORD = "Chaos-Passw0rd!x"
WEB = ("web1", "web2")
WORKER = "worker"
READY_LINE = "background worker running"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """The data directory, the database URL and the running children by name."""

    root: Path
    database_url: str
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = self.root / "data"
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.ports = {name: free_port() for name in WEB}

    # -- the environment and one-off commands ---------------------------------------------

    def env(self, *, background: bool, name: str = "qiao") -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QIAO_")}
        return env | {"PGAPPNAME": name,  # pg_stat_activity tells the children apart

            "QIAO_DATA_DIR": str(self.data), "QIAO_DATABASE_URL": self.database_url,
            "QIAO_ADMIN_PASSWORD": PASSWORD, "QIAO_LOG_LEVEL": "warning",
            "QIAO_BACKGROUND_JOBS": "true" if background else "false",
            "QIAO_WEBHOOK_ALLOW_HOSTS": "127.0.0.1", "QIAO_WEBHOOK_TIMEOUT_SECONDS": "2",
            "QIAO_WEBHOOK_BACKOFF_SECONDS": "1", "QIAO_RULES_BACKOFF_SECONDS": "1",
            "QIAO_API_RATE_PER_MINUTE": "1000000", "PYTHONUNBUFFERED": "1"}

    def qiao(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        """Run ``qiao ARGS`` to the end; its output (with ``check``: AssertionError when
        it fails)."""
        self.data.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "platform_core", *args], cwd=self.data,
                              env=self.env(background=False), capture_output=True,
                              text=True, timeout=timeout, check=False)
        assert done.returncode == 0 or not check, \
            f"qiao {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout + done.stderr

    def prepare(self) -> str:
        """``qiao init``, the CRM template, and a write token for admin: the token."""
        self.qiao("init")
        self.qiao("template", "install", "bank_intermediary_crm")
        out = self.qiao("token", "create", "admin", "--scope", "write", "--expires", "never",
                        "--name", "chaos")
        return out.splitlines()[1].strip()

    # -- the long-running children --------------------------------------------------------

    def start(self, name: str) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        if name.startswith(WORKER):  # "worker", and more: "worker2", …
            args, env = ["worker"], self.env(background=True, name=name)
        else:
            args = ["serve", "--host", "127.0.0.1", "--port", str(self.ports[name])]
            env = self.env(background=False, name=name)
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "platform_core", *args],
                                            cwd=self.data, env=env, stdout=log,
                                            stderr=subprocess.STDOUT)
        log.close()
        self.starts[name] = self.starts.get(name, 0) + 1

    def wait_ready(self, name: str, timeout: float = 180) -> float:
        """Wait until ``name`` answers (a web server's /healthz, the worker's start line);
        the seconds it took."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            proc = self.procs[name]
            assert proc.poll() is None, f"{name} exited {proc.returncode}: {self.tail(name)}"
            if self._ready(name):
                return time.monotonic() - began
            time.sleep(0.2)
        raise AssertionError(f"{name} not ready after {timeout} s: {self.tail(name)}")

    def _ready(self, name: str) -> bool:
        if name.startswith(WORKER):
            text = (self.logs / f"{name}.log").read_text(errors="replace")
            return text.count(READY_LINE) >= self.starts[name]
        try:
            return httpx.get(f"http://127.0.0.1:{self.ports[name]}/healthz",
                             timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start_all(self) -> None:
        """Start all three at once (``prepare`` migrated the database already)."""
        for name in (*WEB, WORKER):
            self.start(name)
        for name in (*WEB, WORKER):
            self.wait_ready(name)

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown, no cleanup, open transactions cut off."""
        proc = self.procs[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
