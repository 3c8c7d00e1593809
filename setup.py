"""Build hook: the alembic migrations go into the wheel as ``platform_core/migrations``.

Everything else about the package is declared in ``pyproject.toml``. The migrations stay
at the top of the checkout (``migrations/``, no ``__init__.py``: alembic loads them by
path), which a wheel cannot carry as they are; this copies them into the built package,
where ``platform_core.migrate`` finds them in an installed Qiao. An editable install
reads them from the checkout, so nothing is copied there.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class BuildWithMigrations(build_py):
    """``build_py`` plus ``migrations/`` copied to ``<build>/platform_core/migrations``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "platform_core" / "migrations"
        shutil.copytree(MIGRATIONS, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithMigrations})
