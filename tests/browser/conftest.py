"""Browser tests: Playwright's sync API driving Debian's chromium against pytest-django's
live server. Without chromium (or the playwright package) they skip, unless
HERALD_REQUIRE_BROWSER is set (CI): then they fail."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test thread; Django would otherwise refuse
# the ORM calls the tests make for their set-up.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags chromium's own connections are refused by a closed
# network, and it stalls.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "pw-123456789"


def _missing(reason: str) -> None:
    if os.environ.get("HERALD_REQUIRE_BROWSER"):
        pytest.fail(f"HERALD_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator["object"]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _missing(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, settings) -> Iterator["object"]:
    """A fresh browser context per test; sandbox outcomes appear at once."""
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def login(page, username: str) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("[type=submit]")
    page.wait_for_url("**/admin/")


class Clicks:
    """What a user does with the mouse, counted per step of a routine: a click, a select or a
    file pick is one, typing into a field is free (#18 asks for each routine's click count)."""

    def __init__(self, page) -> None:
        self.page = page
        self.steps: dict[str, int] = {}
        self.current = ""

    def step(self, name: str) -> None:
        self.current = name
        self.steps.setdefault(name, 0)

    def _do(self, target, method: str, *args, **options) -> None:
        locator = self.page.locator(target) if isinstance(target, str) else target
        getattr(locator, method)(*args, **options)
        self.steps[self.current] = self.steps.get(self.current, 0) + 1

    def click(self, target, **options) -> None:
        self._do(target, "click", **options)

    def check(self, target, **options) -> None:
        self._do(target, "check", **options)

    def select(self, target, value=None, **options) -> None:
        self._do(target, "select_option", value, **options)

    def pick(self, target, files) -> None:
        self._do(target, "set_input_files", files)

    @property
    def total(self) -> int:
        return sum(self.steps.values())

    def report(self) -> str:
        return "\n".join([*(f"{n:>3}  {name}" for name, n in self.steps.items()),
                          f"{self.total:>3}  total"])
