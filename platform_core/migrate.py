"""Apply the alembic migrations in ``migrations/`` to a database (``qiao db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

# An installed Qiao carries them inside the package (setup.py copies them there when a
# wheel is built); a checkout (and an editable install) keeps them at its top level.
_PACKAGED = Path(__file__).resolve().parent / "migrations"
MIGRATIONS = (_PACKAGED if (_PACKAGED / "env.py").is_file()
              else Path(__file__).resolve().parent.parent / "migrations")


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url",
                        engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database's schema to ``revision`` (idempotent)."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
