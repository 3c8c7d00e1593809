"""``qiao backup`` / ``qiao restore``: one archive with the database and the attachments.

The archive (``.tar.gz``) holds ``manifest.json`` (format version, Qiao version,
dialect, schema revision, time), the database — a consistent snapshot taken while the
server runs (SQLite's online backup API; ``pg_dump`` in custom format for PostgreSQL) —
and ``attachments/``. The secret key file is deliberately NOT in it: keep it apart, so a
stolen backup does not carry the keys that protect it.

What the manifest does carry is ``encryption``: the ids of the keys sealing the
archive's encrypted values, how many each seals and a one-way fingerprint of each key
(``inventory.sealing_keys``). ``restore`` compares them with the keyring of the target
data directory *before* replacing anything, and refuses — naming the missing ids and
where the keys are expected — unless ``allow_missing_keys`` (those values then show as
unavailable until the keys come back).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

from platform_core import __version__
from platform_core.db import make_engine
from platform_core.errors import InvalidInput
from platform_core.migrate import current
from platform_core.security.crypto import Keyring, KeyringError
from platform_core.settings import Settings

FORMAT_VERSION = 1


class BackupError(InvalidInput):
    code = "backup_failed"


class MissingKeys(BackupError):
    """The keyring where the archive is restored cannot open the archive's values."""

    code = "backup_keys_missing"


def key_place(settings: Settings) -> str:
    """Where this installation's field-encryption keys are expected, in words."""
    if settings.encryption_keys.strip():
        return "QIAO_ENCRYPTION_KEYS"
    return f"the key file {settings.effective_encryption_key_file.resolve()}"


def _keyring(settings: Settings) -> Keyring | None:
    try:
        return Keyring.find(settings)
    except (KeyringError, OSError) as exc:
        raise BackupError(str(exc)) from None


def _libpq(url: URL) -> tuple[str, dict[str, str]]:
    """A libpq connection string without the password, and the environment carrying it."""
    plain = url.set(drivername="postgresql", password=None)
    env = {"PGPASSWORD": url.password} if url.password else {}
    return plain.render_as_string(hide_password=False), env


def _run(args: list[str], env: dict[str, str]) -> None:
    import os

    result = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **env},
                            check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise BackupError(f"{Path(args[0]).name} failed: {last}")


def _dump_database(url: URL, into: Path) -> str:
    if url.get_backend_name() == "sqlite":
        source = sqlite3.connect(url.database)
        target = sqlite3.connect(into / "qiao.db")
        with target:
            source.backup(target)  # consistent even while the server writes
        source.close()
        target.close()
        return "qiao.db"
    conninfo, env = _libpq(url)
    _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(into / "database.dump"),
          conninfo], env)
    return "database.dump"


def backup(settings: Settings, path: Path) -> dict[str, Any]:
    """Write a backup archive to ``path``; its manifest."""
    url = make_url(settings.effective_database_url)
    from platform_core.db import Database
    from platform_core.security.inventory import sealing_keys

    engine = make_engine(settings.effective_database_url)
    try:
        revision = current(engine)
        # taken before the dump: a value sealed in between is under the same keys
        encryption = sealing_keys(Database(engine), _keyring(settings))
    finally:
        engine.dispose()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        manifest = {"format_version": FORMAT_VERSION, "qiao_version": __version__,
                    "dialect": url.get_backend_name(), "schema_revision": revision,
                    "created_at": datetime.now(UTC).isoformat(),
                    "encryption": encryption, "database": _dump_database(url, work)}
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2))
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "w:gz") as tar:
            tar.add(work / "manifest.json", arcname="manifest.json")
            tar.add(work / manifest["database"], arcname=manifest["database"])
            attachments = settings.data_dir / "attachments"
            if attachments.is_dir():
                tar.add(attachments, arcname="attachments")
    return manifest


def restore(settings: Settings, path: Path, *, allow_missing_keys: bool = False
            ) -> dict[str, Any]:
    """Replace the database and attachments with the archive's (stop the server first).

    Refused with ``MissingKeys`` before anything is replaced when the keyring here lacks
    a key the archive's values are sealed with, unless ``allow_missing_keys``.
    """
    from platform_core.security.inventory import key_problems

    url = make_url(settings.effective_database_url)
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(path, "r:gz") as tar:
        work = Path(tmp)
        tar.extractall(work, filter="data")
        manifest = json.loads((work / "manifest.json").read_text())
        if manifest.get("format_version") != FORMAT_VERSION:
            raise BackupError(f"unknown backup format {manifest.get('format_version')!r}")
        if manifest["dialect"] != url.get_backend_name():
            raise BackupError(f"this backup is of a {manifest['dialect']} database; the "
                              f"configured database is {url.get_backend_name()}")
        problems = key_problems(manifest.get("encryption"), _keyring(settings))
        if problems and not allow_missing_keys:
            raise MissingKeys(
                "nothing restored: the backup's encrypted values need keys that "
                f"{key_place(settings)} does not hold: "
                + ", ".join(p.words() for p in problems)
                + ". Put the keys the backup was made with there and run again, or pass "
                "--allow-missing-keys to restore anyway: those values then show as "
                "unavailable until the keys are back.",
                missing=[p.key_id for p in problems])
        if manifest["dialect"] == "sqlite":
            target = Path(url.database)
            for suffix in ("-wal", "-shm"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(work / manifest["database"], target)
        else:
            conninfo, env = _libpq(url)
            _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
                  "--dbname", conninfo, str(work / manifest["database"])], env)
        attachments = settings.data_dir / "attachments"
        shutil.rmtree(attachments, ignore_errors=True)
        if (work / "attachments").is_dir():
            shutil.copytree(work / "attachments", attachments)
    return manifest
