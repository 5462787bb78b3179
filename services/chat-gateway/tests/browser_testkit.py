"""Debian's headless Chromium, driven by Selenium, for the web page's tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium import webdriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Flags that work in a sandboxed container without a display or network.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1440,900",
)
WAIT_S = 30  # a slow, shared machine: generous, and only ever spent when something is wrong


def start_chromium(tmp_path: Path) -> webdriver.Chrome:
    """A fresh browser with its own profile under `tmp_path`; the caller quits it."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"the web page's test needs Debian's chromium and chromium-driver; missing: "
            f"{', '.join(missing)}. Install them: apt-get install -y chromium chromium-driver "
            "(scripts/install.sh does it where apt-get is available)",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    # The console (CSP violations among it) for the tests to read.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(
        executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log")
    )
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT_S)
    return driver


def csp_violations(driver: webdriver.Chrome) -> list[str]:
    """What the page's CSP (Trusted Types included) refused since the last call."""
    logs = driver.get_log("browser")
    return [entry["message"] for entry in logs if entry["source"] == "security"]
