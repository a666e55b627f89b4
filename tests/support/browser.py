"""Real-browser helpers: the console served by uvicorn on a free loopback port in a thread, and headless
Debian Chromium driven by selenium through Debian's chromedriver (nothing is downloaded at run time)."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_CANDIDATES = ("chromedriver",)
# Quiet, offline, reproducible: no GPU, no first-run or background traffic, a fresh profile each time.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1500,1100")


def find_chromium() -> tuple[str, str] | None:
    """(browser, driver) executables, or None when either is missing."""
    browser = next((p for p in map(shutil.which, CHROMIUM_CANDIDATES) if p), None)
    driver = next((p for p in map(shutil.which, DRIVER_CANDIDATES) if p), None)
    return (browser, driver) if browser and driver else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(app) -> Iterator[str]:
    """Serve `app` on 127.0.0.1 in a background thread; yields the base URL; stops it after."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium(executables: tuple[str, str]) -> Iterator:
    """A headless Chromium session with a fresh profile directory (removed afterwards)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = executables
    with tempfile.TemporaryDirectory(prefix="console-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
        try:
            yield driver
        finally:
            driver.quit()


def save_screenshot(driver, directory: Path, name: str) -> Path:
    """A PNG of the whole page (the graph can be taller than the window)."""
    directory.mkdir(parents=True, exist_ok=True)
    width = driver.execute_script("return Math.max(document.body.scrollWidth, 1200)")
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 800)")
    driver.set_window_size(min(width + 40, 2400), min(height + 140, 6000))
    path = directory / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
