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
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => "
                      "requestAnimationFrame(done)))")
        overflows[width] = overflow(page)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    if before:
        page.set_viewport_size(before)
    return overflows
