"""The Door page in a real browser: a staff member opens the event's Door tab, finds a guest by
name and checks her in (the result in big letters, the counts move), sees the counts follow a
check-in made at another door, and scans a ticket with the camera.

The camera is Chromium's fake one playing a video file (``--use-file-for-fake-video-capture``)
of a QR code of a real check-in token, drawn with segno and written as YUV4MPEG2: the page's
own path runs end to end — getUserMedia, frames drawn to a canvas, the vendored jsQR decoding
them, the POST of the token, the welcome. Screenshots at 1440 and 390 px
(var/screenshots/door-*.png), and the page never scrolls sideways.
"""

import re
import uuid
from pathlib import Path

import pytest
import segno

from accounts.models import Membership
from accounts.services import account_create, membership_add
from guests.checkin import attendee_check_in
from guests.models import Attendee
from guests.services import attendee_create, event_create
from guests.tokens import ticket_token
from tests.browser.conftest import ARGS, CHROMIUM, PASSWORD, login
from tests.browser.screens import assert_fits, screenshot

pytestmark = pytest.mark.browser


def y4m(path: Path, text: str, width: int = 640, height: int = 480, frames: int = 3) -> None:
    """A short video of the QR code of ``text``, black on white in the middle of the frame:
    YUV4MPEG2 (a header, then per frame "FRAME" and the 4:2:0 planes Y, U, V)."""
    rows = [list(row) for row in segno.make(text, error="m").matrix_iter(scale=1, border=4)]
    scale = min(width, height) * 8 // 10 // len(rows)
    left, top = (width - len(rows) * scale) // 2, (height - len(rows) * scale) // 2
    luma = bytearray([235]) * (width * height)  # white (video range)
    for r, row in enumerate(rows):
        for c, dark in enumerate(row):
            if dark:
                for dy in range(scale):
                    start = (top + r * scale + dy) * width + left + c * scale
                    luma[start:start + scale] = bytes([16]) * scale  # black
    chroma = bytes([128]) * (width // 2 * (height // 2) * 2)  # no colour
    with path.open("wb") as video:
        video.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            video.write(b"FRAME\n" + bytes(luma) + chroma)


def _guest(event, first: str, last: str, reference: str) -> Attendee:
    return attendee_create(account=event.account, mode="live", id=uuid.uuid4(),
                           event_id=event.pk, email=f"{first.lower()}@example.com",
                           first_name=first, last_name=last,
                           correlation_id=reference).attendee


@pytest.fixture
def gala(db):
    account = account_create(name="Acme Events").account
    membership_add(account=account, username="dora", role=Membership.Role.STAFF,
                   password=PASSWORD)
    event = event_create(account=account, name="Spring Gala")
    guests = [_guest(event, "Ann", "Lee", "order-1"), _guest(event, "Bob", "Stone", "order-2"),
              _guest(event, "Cleo", "Marsh", "order-3")]
    return event, guests


def _counts(page) -> tuple[str, str]:
    return (page.locator("#door-checked-in").inner_text(),
            page.locator("#door-expected").inner_text())


def test_staff_find_a_guest_check_her_in_and_watch_the_counts(page, gala):
    event, (ann, _, cleo) = gala
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, "dora")
    page.goto(f"/admin/guests/event/{event.pk}/change/")
    page.locator("a").filter(has_text=re.compile(r"^\s*Door\s*$")).filter(
        visible=True).first.click()
    page.wait_for_url(f"**/admin/guests/event/{event.pk}/door/")
    assert page.locator("#door-result-title").inner_text() == "Ready"
    assert _counts(page) == ("0", "3")
    overflows = screenshot(page, "door")
    assert overflows == {1440: 0, 390: 0}, overflows

    page.fill("#door-search", "ann")
    row = page.locator(".door-guest", has_text="Ann Lee")
    row.get_by_role("button", name="Check in Ann Lee").click()

    title = page.locator("#door-result-title")
    page.wait_for_function(
        "() => document.getElementById('door-result-title').textContent === 'Welcome, Ann Lee'")
    assert "door-welcome" in page.locator("#door-result").get_attribute("class")
    assert _counts(page) == ("1", "3")
    assert row.locator(".door-guest-in").inner_text().startswith("Checked in at ")
    assert Attendee.objects.get(pk=ann.pk).checked_in_by == "dora at the Door page"

    # Another door lets Cleo in: the counts follow within a poll (every 5 s).
    attendee_check_in(account=event.account, mode="live", token=ticket_token(cleo),
                      by="door 2")
    page.wait_for_function(
        "() => document.getElementById('door-checked-in').textContent === '2'", timeout=8000)

    # Her search result now says she is in; searching by order reference finds her.
    page.fill("#door-search", "order-3")
    page.locator(".door-guest", has_text="Cleo Marsh").locator(
        ".door-guest-in", has_text="(door 2)").wait_for()
    page.set_viewport_size({"width": 390, "height": 844})
    assert_fits(page)
    screenshot(page, "door-searched")
    assert title.inner_text() == "Welcome, Ann Lee"


def test_the_camera_scans_a_real_ticket_once(browser, live_server, gala, tmp_path, settings):
    event, (_, bob, _) = gala
    video = tmp_path / "ticket.y4m"
    y4m(video, ticket_token(bob))
    camera = browser.browser_type.launch(executable_path=CHROMIUM, headless=True, args=[
        *ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}"])
    context = camera.new_context(base_url=live_server.url,
                                 viewport={"width": 390, "height": 844})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        login(page, "dora")
        page.goto(f"/admin/guests/event/{event.pk}/door/")
        page.click("#door-camera-start")
        page.wait_for_function(
            "() => document.getElementById('door-result-title').textContent === "
            "'Welcome, Bob Stone'", timeout=15_000)
        assert _counts(page) == ("1", "3")
        assert page.locator("#door-video-box").is_visible()
        assert_fits(page)
        screenshot(page, "door-scanned")
        # The code stays in front of the camera: it is read again after the pause, and the
        # door now says Bob is already in.
        page.wait_for_function(
            "() => document.getElementById('door-result-title').textContent"
            ".startsWith('Already checked in at')", timeout=15_000)
        assert "door-already" in page.locator("#door-result").get_attribute("class")
        assert Attendee.objects.filter(checked_in_at__isnull=False).count() == 1
        page.click("#door-camera-stop")
        assert not page.locator("#door-video-box").is_visible()
    finally:
        context.close()
        camera.close()
