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
        """Load `url` afresh (not just its new hash route) and wait until its page has drawn.
        `errors()` from then on are this page's."""
        self.driver.get("about:blank")
        self.errors()
        self.driver.get(url)
        self.wait_drawn()

    def wait_drawn(self, after: str | None = None) -> None:
        """Wait until the page has drawn (again, if `after` is the count of the last drawing)."""
        self.wait(lambda: self.drawn() not in (None, after), "the page to draw")

    def drawn(self) -> str | None:
        """How many times the console has drawn a page (`body[data-ready]`), None before."""
        value = self.driver.execute_script("return document.body && document.body.dataset.ready")
        return str(value) if value is not None else None

    def wait(self, condition: Callable[[], T | None], what: str, timeout_s: float = 20) -> T:
        """The first true value of `condition`, asked every 0.1 s."""
        def check(_: Any) -> T | None:
            return condition()
        found = WebDriverWait(self.driver, timeout_s, poll_frequency=0.1).until(
            check, f"waited {timeout_s}s for {what}")
        assert found is not None
        return found

    def find(self, css: str) -> WebElement:
        """The first element `css` selects, once there is one."""
        def first() -> WebElement | None:
            found = self.driver.find_elements(By.CSS_SELECTOR, css)
            return found[0] if found else None
        return self.wait(first, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def texts(self, css: str) -> list[str]:
        return [el.text for el in self.all(css)]

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))

    def errors(self) -> list[str]:
        """What the page wrote to the console at level SEVERE (script errors, failed loads)
        since the last call."""
        entries: list[dict[str, Any]] = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        return [entry["message"] for entry in entries
                if entry["level"] == "SEVERE"]
