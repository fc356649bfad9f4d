"""Screenshots and the no-overflow check shared by the browser tests.

`screenshot(page, "guest")` saves var/screenshots/guest-1440.png and guest-390.png: the same
page at a desktop and a phone width (the viewport is resized, the page is not reloaded), then
puts the viewport back. `assert_fits(page)` fails when the page scrolls sideways; a wide table
must scroll inside its own box instead.
"""

from pathlib import Path

from django.conf import settings

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
WIDTHS = {1440: 900, 390: 844}  # width: height (a laptop, a phone)

# The page's width beyond the viewport (0 when it fits), in CSS pixels.
OVERFLOW_JS = "() => document.documentElement.scrollWidth - window.innerWidth"
# Unfold scrolls its main column inside the window at desktop widths, so a full-page
# screenshot would stop at the window's height: the hidden height of the tallest scrolling
# box, to grow the window by while the screenshot is taken.
HIDDEN_HEIGHT_JS = """() => Math.max(0, ...[...document.querySelectorAll("body *")].filter((e) => {
    const overflow = getComputedStyle(e).overflowY;
    return (overflow === "auto" || overflow === "scroll") && e.clientHeight > 200;
}).map((e) => e.scrollHeight - e.clientHeight))"""
MAX_HEIGHT = 8000
FOOTER = 120  # unfold's sticky bar of form buttons covers the column's last lines
SETTLE_JS = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


def overflow(page) -> int:
    return max(0, page.evaluate(OVERFLOW_JS))


def assert_fits(page) -> None:
    """No horizontal page overflow at the current viewport width."""
    extra = overflow(page)
    width = page.viewport_size["width"] if page.viewport_size else "?"
    assert extra == 0, f"{page.url} overflows by {extra} px at {width} px"


def screenshot(page, name: str) -> dict[int, int]:
    """Save the whole page at 1440 and 390 px; answer each width's overflow in px (0 when
    the page fits), for a test to assert on or report."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    overflows = {}
    for width, height in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        # Let the layout settle after the resize (media queries, sidebar collapse).
        page.evaluate(SETTLE_JS)
        overflows[width] = overflow(page)
        # The window as tall as the whole page, so that sticky and fixed bars (a form's
        # buttons, a list's pages) sit below the content, not across it.
        tall = max(page.evaluate("() => document.documentElement.scrollHeight"),
                   height + page.evaluate(HIDDEN_HEIGHT_JS))
        if tall > height:
            page.set_viewport_size({"width": width, "height": min(tall + FOOTER, MAX_HEIGHT)})
            page.evaluate(SETTLE_JS)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    if before:
        page.set_viewport_size(before)
    return overflows
