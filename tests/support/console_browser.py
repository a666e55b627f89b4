"""Selenium helpers for the console's browser tests: waiting with a useful message, finding elements,
reading a state's drawn status in one script call (the page redraws while an execution runs), the
graph's geometry under pan and zoom, a chart's data and painted pixels, and the README's screenshots."""

from __future__ import annotations

import os
from pathlib import Path

WAIT = 60  # generous: CI runs these beside the rest of the suite on 2 cores
DOCS = Path(__file__).resolve().parents[2] / "docs"
SCREEN = (1400, 1000)  # the size of the README's screenshots


def wait_for(driver, condition, what: str):
    """Wait for `condition`; on timeout say what the page showed (states, execution status, console)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.1).until(condition)
    except TimeoutException:
        shown = driver.execute_script(
            "return [(document.querySelector('h1') || {}).textContent,"
            " Array.from(document.querySelectorAll('.error')).map((e) => e.textContent).join(' | '),"
            " Array.from(document.querySelectorAll('[data-state]')).map("
            "   (e) => e.getAttribute('data-state') + '=' + e.getAttribute('data-status')).join(' ')]")
        raise AssertionError(f"timed out waiting for {what}; page showed {shown}; "
                             f"console: {driver.get_log('browser')}") from None


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def state_status(driver, name: str) -> str | None:
    # One script call, not find-then-read: the page redraws the graph as events arrive, and an element
    # found a moment ago may be gone (stale) by the time it is read.
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e && e.getAttribute('data-status')",
        f'[data-state="{name}"]')


def box_fill(driver, name: str) -> str | None:
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e && getComputedStyle(e).fill",
        f'[data-state="{name}"] > rect.box')


def open_execution(driver, site: str, name: str) -> None:
    driver.get(f"{site}/#/execution/{name}")
    wait_for(driver, lambda d: css(d, "#graph-svg") and css(d, "#history-table"), f"the graph of {name}")


def csp_violations(driver) -> list[str]:
    """The browser log's Content-Security-Policy complaints (none expected)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if "Content Security Policy" in entry["message"]]


def graph_geometry(driver) -> dict:
    """Pane and drawn graph boxes [left, top, right, bottom] (px), Panzoom's scale and pan, and the
    height of FinalMerge's name (text grows with the zoom)."""
    return driver.execute_script("""
        const pane = document.getElementById('graph'), svg = document.getElementById('graph-svg');
        const p = pane.getBoundingClientRect(), g = svg.getBoundingClientRect();
        const name = document.querySelector('[data-state="FinalMerge"] text.name').getBoundingClientRect();
        return {pane: [p.left, p.top, p.right, p.bottom], graph: [g.left, g.top, g.right, g.bottom],
                scale: pane.__panzoom.getScale(), pan: pane.__panzoom.getPan(), nameHeight: name.height};""")


def inside(inner: list[float], outer: list[float]) -> bool:
    """Box `inner` lies within `outer` (1 px of rounding allowed)."""
    return (inner[0] >= outer[0] - 1 and inner[1] >= outer[1] - 1 and inner[2] <= outer[2] + 1
            and inner[3] <= outer[3] + 1)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def check_docs_screenshot(name: str, png: bytes) -> None:
    """docs/NAME is this page at SCREEN and the README shows it. UPDATE_DOCS_SCREENSHOTS=1 writes it
    again after a page changed (fonts differ between Chromium builds, so the check is the page's
    layout size, not pixels)."""
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        (DOCS / name).write_bytes(png)
    assert f"](docs/{name})" in (DOCS.parent / "README.md").read_text(encoding="utf-8")
    assert png_size((DOCS / name).read_bytes()) == png_size(png), f"{name} is not of the current page"


def click_state(driver, name: str) -> None:
    """Choose state `name` in the graph and wait for its details in the state panel."""
    driver.execute_script("document.querySelector(arguments[0]).dispatchEvent("
                          "new MouseEvent('click', {bubbles: true}))", f'[data-state="{name}"]')
    wait_for(driver, lambda d: css(d, "#state-detail h2") and
             css(d, "#state-detail h2")[0].text.startswith(name), f"{name}'s details")


def chart(driver, canvas: str) -> dict:
    """The Chart.js chart on canvas id `canvas`: its labels, datasets and count of painted pixels."""
    return driver.execute_script("""
        const canvas = document.getElementById(arguments[0]), chart = Chart.getChart(canvas);
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
        return {labels: chart.data.labels, painted: painted,
                datasets: chart.data.datasets.map((d) => ({label: d.label, data: d.data}))};""", canvas)
