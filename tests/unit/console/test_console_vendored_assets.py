"""Each vendored library (dagre for the graph layout, Chart.js for the dashboard, Panzoom for pan and
zoom) is the npm file its provenance README names, with its licence, and the page loads nothing from
outside the package (the console works offline)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

import embedding_ingest.console as web_console

STATIC = Path(web_console.__file__).parent / "static"
VENDORED = [  # folder, file, npm package, version
    ("dagre", "dagre.min.js", "@dagrejs/dagre", "3.1.3"),
    ("chartjs", "chart.umd.min.js", "chart.js", "4.6.2"),
    ("panzoom", "panzoom.min.js", "@panzoom/panzoom", "4.6.2"),
]


@pytest.mark.parametrize(("folder", "name", "package", "release"), VENDORED)
def test_each_vendored_library_is_the_file_its_provenance_readme_names(folder, name, package, release):
    vendor = STATIC / "vendor" / folder
    readme = (vendor / "README.md").read_text(encoding="utf-8")
    recorded = re.search(rf"`{re.escape(name)}` sha256 \| `([0-9a-f]{{64}})`", readme).group(1)
    assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == recorded
    assert f"`{package}`" in readme and release in readme and "sha512-" in readme
    licences = [p.read_text(encoding="utf-8") for p in vendor.glob("LICENSE*")]
    assert licences and all("Permission is hereby granted" in text for text in licences)
    assert f'src="/static/vendor/{folder}/{name}"' in (STATIC / "index.html").read_text(encoding="utf-8")


def test_the_page_loads_only_its_own_files():
    for asset in [STATIC / "index.html", *STATIC.glob("*.js"), STATIC / "console.css"]:
        text = asset.read_text(encoding="utf-8")
        assert not re.search(r"(src|href)=\"(https?:)?//", text), asset.name
        assert "innerHTML" not in text, f"{asset.name}: data must reach the page as text nodes"
