"""Rebuild ``x6.css`` from the npm package ``@antv/x6``; run by hand when upgrading,
never at install time.

    cd /tmp && npm pack @antv/x6@3.1.8
    python frontend/static/vendor/x6/build.py /tmp/antv-x6-3.1.8.tgz

Why: X6 keeps its CSS as JavaScript strings (``src/**/style/raw.ts``, generated from its
``.less`` files) and injects them as ``<style>`` elements when a graph or a plugin is
created. Our CSP (``style-src 'self'``) refuses such elements, so the page turns the
injection off (``X6.Config.autoInsertCSS = false`` and, for the plugins, which ignore
that switch, see ``static/flow_designer.js``) and loads this file instead.

Reads, without unpacking the tarball, the core stylesheet and those of the plugins the
designer uses, and writes them one after the other, unchanged, beside this script.
"""

from __future__ import annotations

import re
import sys
import tarfile
from pathlib import Path

OUT = Path(__file__).with_name("x6.css")
PARTS = ("package/src/style/raw.ts", "package/src/plugin/selection/style/raw.ts",
         "package/src/plugin/snapline/style/raw.ts", "package/src/plugin/dnd/style/raw.ts")
CONTENT = re.compile(r"export const content = `(.*)`", re.S)


def main(tarball: str) -> None:
    out = [f"/* @antv/x6 CSS, extracted by build.py from {Path(tarball).name} (MIT). */"]
    with tarfile.open(tarball) as tar:
        for name in PARTS:
            text = tar.extractfile(name).read().decode()  # type: ignore[union-attr]
            match = CONTENT.search(text)
            if match is None:
                raise SystemExit(f"{name}: no CSS string found")
            out.append(f"/* {name.removeprefix('package/')} */\n{match.group(1).strip()}")
    OUT.write_text("\n".join(out) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
