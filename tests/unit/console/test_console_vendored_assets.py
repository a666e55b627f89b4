"""The vendored graph layout library is the npm file its provenance README names, with its licence, and
the page loads nothing from outside the package (the console works offline)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import embedding_ingest.console as web_console

STATIC = Path(web_console.__file__).parent / "static"
VENDOR = STATIC / "vendor" / "dagre"


def test_dagre_is_the_file_the_provenance_readme_names():
    readme = (VENDOR / "README.md").read_text(encoding="utf-8")
    recorded = re.search(r"`dagre.min.js` sha256 \| `([0-9a-f]{64})`", readme).group(1)
    assert hashlib.sha256((VENDOR / "dagre.min.js").read_bytes()).hexdigest() == recorded
    assert "@dagrejs/dagre" in readme and "3.1.3" in readme and "sha512-" in readme
    assert "MIT License" in (VENDOR / "LICENSE").read_text(encoding="utf-8") or \
        "Permission is hereby granted" in (VENDOR / "LICENSE").read_text(encoding="utf-8")


def test_the_page_loads_only_its_own_files():
    for asset in [STATIC / "index.html", *STATIC.glob("*.js"), STATIC / "console.css"]:
        text = asset.read_text(encoding="utf-8")
        assert not re.search(r"(src|href)=\"(https?:)?//", text), asset.name
        assert "innerHTML" not in text, f"{asset.name}: data must reach the page as text nodes"
