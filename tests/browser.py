"""Headless Chromium for the console's tests, driven by Selenium: Debian's `chromium` through
Debian's `chromedriver` (deploy/local/browser.sh installs both; `make test` runs it).

Nothing is downloaded at run time: the driver's path is given to Selenium, which then never
starts Selenium Manager, and SE_OFFLINE keeps it from trying to. The flags are the ones this
machine needs: no sandbox (tests run as root), no GPU, and none of Chromium's own background
traffic (update checks, sync, QUIC), which a closed network refuses noisily.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,1000", "--lang=en-GB",
)

T = TypeVar("T")


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is missing: run `bash deploy/local/browser.sh install` (make test does)"
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    """A fresh headless Chromium with an empty profile, closed (and its profile deleted) after."""
    os.environ["SE_OFFLINE"] = "true"
    profile = tempfile.mkdtemp(prefix="polku-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Browser:
    """The driver, with the waits the console's tests need."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    def open(self, url: str) -> None:
        """Load `url` (a full address or a new hash route) and wait until its page has drawn."""
        before = self.driver.execute_script("return document.body && document.body.dataset.ready")
        self.driver.get(url)
        self.wait(lambda: self.driver.execute_script(
            "return document.body.dataset.ready") not in (None, before), "the page to draw")

    def wait(self, condition: Callable[[], T | None], what: str, timeout_s: float = 20) -> T:
        def check(_: Any) -> T | None:
            return condition()
        return WebDriverWait(self.driver, timeout_s, poll_frequency=0.1).until(
            check, f"waited {timeout_s}s for {what}")

    def find(self, css: str) -> WebElement:
        return self.wait(lambda: (self.driver.find_elements(By.CSS_SELECTOR, css) or [None])[0],
                         css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def texts(self, css: str) -> list[str]:
        return [el.text for el in self.all(css)]

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))

    def errors(self) -> list[str]:
        """What the page wrote to the console at level SEVERE (script errors, failed loads)."""
        return [entry["message"] for entry in self.driver.get_log("browser")
                if entry["level"] == "SEVERE"]
