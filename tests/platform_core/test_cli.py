"""The ``qiao`` command as a user runs it: a real subprocess, a real port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import scratch_database


def _env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QIAO_")}
    env |= {"QIAO_DATA_DIR": str(tmp_path / "data"), **extra}
    if database_url.startswith("postgresql"):
        env["QIAO_DATABASE_URL"] = database_url
    return env


def qiao(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "platform_core", *args], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def fresh_url(database_url):
    """A database of its own for one CLI test (its users and audit log start empty)."""
    if not database_url.startswith("postgresql"):
        yield database_url  # SQLite: the test's own data dir holds a fresh file
        return
    with scratch_database(database_url, "cli") as url:
        yield url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_version_and_help(tmp_path, database_url):
    env = _env(tmp_path, database_url)
    assert qiao("version", env=env).stdout.startswith("qiao 0.")
    for cmd in (["--help"], ["init", "--help"], ["serve", "--help"], ["db", "upgrade", "--help"]):
        result = qiao(*cmd, env=env)
        assert result.returncode == 0 and "Usage" in result.stdout


def test_init_then_upgrade_is_idempotent(tmp_path, database_url):
    env = _env(tmp_path, database_url)
    first = qiao("init", env=env)
    assert first.returncode == 0, first.stderr
    assert "ready" in first.stdout and (tmp_path / "data" / "secret.key").exists()
    again = qiao("db", "upgrade", env=env)
    assert again.returncode == 0 and "latest revision" in again.stdout


def test_a_bad_setting_stops_start_up_with_one_line(tmp_path, database_url):
    result = qiao("serve", env=_env(tmp_path, database_url, QIAO_PORT="eighty"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "qiao: invalid setting QIAO_PORT: Input should be a valid integer, unable to parse "
        "string as an integer"]


def test_an_unreachable_database_is_one_clear_line(tmp_path):
    env = _env(tmp_path, "", QIAO_DATABASE_URL="postgresql+psycopg://q@127.0.0.1:1/q")
    result = qiao("init", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("qiao: cannot prepare the database at postgresql")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_healthz_on_a_free_port(tmp_path, database_url, workers):
    port = _free_port()
    env = _env(tmp_path, database_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "platform_core", "serve", "--host", "127.0.0.1", "--port",
         str(port), "--workers", str(workers)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, body = time.monotonic() + 60, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                body = response.json()
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert body is not None, "qiao serve never answered"
        assert body["status"] == "ok" and body["database"]["ok"] is True
        page = httpx.get(f"http://127.0.0.1:{port}/", headers={"Accept": "text/html"},
                         follow_redirects=True, timeout=5)
        assert page.status_code == 200 and page.url.path == "/login"  # sign in first
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/apps", timeout=5).status_code == 401
        if workers == 1:
            time.sleep(2.5)  # the background jobs run every second meanwhile
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert "serving on http://127.0.0.1" in output
    # an operator's journal gets no line per background run at the default level
    assert "Running job" not in output and "executed successfully" not in output


def test_init_creates_the_first_admin_once(tmp_path, fresh_url):
    env = _env(tmp_path, fresh_url)
    first = qiao("init", env=env)
    assert first.returncode == 0, first.stderr
    assert "created user admin with the one-time password" in first.stdout
    assert "keep the key file" in first.stdout
    again = qiao("init", env=env)
    assert "created user admin" not in again.stdout


def test_users_and_a_tampered_audit_log_from_the_command_line(tmp_path, fresh_url):
    from sqlalchemy import text

    from platform_core.db import make_engine

    env = _env(tmp_path, fresh_url, QIAO_ADMIN_PASSWORD="Broker-Passw0rd!")
    assert "one-time password" not in qiao("init", env=env).stdout
    added = qiao("user", "add", "zhangsan", "--name", "张三", "--role", "admin", env=env)
    assert added.returncode == 0 and "one-time password:" in added.stdout
    dup = qiao("user", "add", "zhangsan", env=env)
    assert dup.returncode == 2 and dup.stderr.strip() == "qiao: user 'zhangsan' already exists"
    assert qiao("user", "reset-password", "zhangsan", env=env).returncode == 0
    assert qiao("user", "disable", "zhangsan", env=env).returncode == 0
    ok = qiao("audit", "verify", env=env)
    assert ok.returncode == 0 and "intact (4 entries)" in ok.stdout
    url = env.get("QIAO_DATABASE_URL") or f"sqlite:///{tmp_path / 'data' / 'qiao.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        second = conn.execute(text("SELECT id FROM audit_log ORDER BY id LIMIT 1 OFFSET 1")
                              ).scalar_one()
        conn.execute(text("UPDATE audit_log SET actor_name = 'someone else' WHERE id = :id"),
                     {"id": second})
    engine.dispose()
    bad = qiao("audit", "verify", env=env)
    assert bad.returncode == 1
    assert f"BROKEN at entry {second}: its content was changed" in bad.stderr


def _usernames(url: str) -> list[str]:
    from sqlalchemy import text

    from platform_core.db import make_engine

    engine = make_engine(url)
    with engine.connect() as conn:
        names = list(conn.execute(text("SELECT username FROM users ORDER BY username"))
                     .scalars())
    engine.dispose()
    return names


def test_backup_change_restore_gives_back_the_snapshot(tmp_path, fresh_url):
    env = _env(tmp_path, fresh_url, QIAO_ADMIN_PASSWORD="Broker-Passw0rd!")
    url = env.get("QIAO_DATABASE_URL") or f"sqlite:///{tmp_path / 'data' / 'qiao.db'}"
    assert qiao("init", env=env).returncode == 0
    assert qiao("user", "add", "zhangsan", env=env).returncode == 0
    files = tmp_path / "data" / "attachments" / "ab"
    files.mkdir(parents=True)
    (files / "contract").write_bytes(b"%PDF signed contract")
    archive = tmp_path / "backups" / "qiao.tar.gz"
    made = qiao("backup", str(archive), env=env)
    assert made.returncode == 0, made.stderr
    assert "is NOT in the backup" in made.stdout and archive.stat().st_size > 0
    before = _usernames(url)

    assert qiao("user", "add", "lisi", env=env).returncode == 0
    (files / "contract").write_bytes(b"tampered")
    (files / "extra").write_bytes(b"new file")
    assert _usernames(url) == sorted([*before, "lisi"])

    back = qiao("restore", str(archive), env=env)
    assert back.returncode == 0, back.stderr
    assert _usernames(url) == before == ["admin", "zhangsan"]
    assert (files / "contract").read_bytes() == b"%PDF signed contract"
    assert not (files / "extra").exists()
    assert "intact" in qiao("audit", "verify", env=env).stdout
    missing = qiao("restore", str(tmp_path / "nope.tar.gz"), env=env)
    assert missing.returncode == 2 and "no backup file" in missing.stderr


def test_tokens_and_unlock_from_the_command_line(tmp_path, fresh_url):
    from fastapi.testclient import TestClient

    from platform_core.app import create_app
    from platform_core.db import Database
    from platform_core.settings import load_settings

    env = _env(tmp_path, fresh_url, QIAO_ADMIN_PASSWORD="Broker-Passw0rd!")
    assert qiao("init", env=env).returncode == 0
    made = qiao("token", "create", "admin", "--scope", "app:crm", "--scope", "write",
                "--expires", "30d", "--name", "finance", env=env)
    assert made.returncode == 0, made.stderr
    secret = made.stdout.splitlines()[1]
    assert secret.startswith("qiao_") and "write" in made.stdout
    bad = qiao("token", "create", "admin", "--scope", "everything", env=env)
    assert bad.returncode == 2 and "--scope: expected app:<app>" in bad.stderr
    assert qiao("token", "create", "nobody", env=env).returncode == 2
    url = env.get("QIAO_DATABASE_URL") or f"sqlite:///{tmp_path / 'data' / 'qiao.db'}"
    db = Database.from_url(url)
    app = create_app(load_settings(data_dir=tmp_path / "data"), db=db)
    client = TestClient(app, raise_server_exceptions=False)
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me", headers=bearer).json()["username"] == "admin"
    listed = qiao("token", "list", "admin", env=env).stdout
    assert "finance" not in listed and "active" in listed and "last used 20" in listed
    token_id = listed.split("\t")[0]
    assert qiao("token", "revoke", token_id, env=env).returncode == 0
    assert client.get("/api/v1/me", headers=bearer).status_code == 401
    for _ in range(5):
        client.post("/api/v1/auth/token", json={"username": "admin", "password": "wrong"})
    locked = client.post("/api/v1/auth/token", json={"username": "admin",
                                                     "password": "Broker-Passw0rd!"})
    assert locked.status_code == 423
    assert qiao("user", "unlock", "admin", env=env).returncode == 0
    assert client.post("/api/v1/auth/token", json={"username": "admin",
                                                   "password": "Broker-Passw0rd!"}
                       ).status_code == 200
    db.dispose()
