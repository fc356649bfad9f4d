"""The guest import in a real browser (#18 finding 4): a coordinator uploads a French
spreadsheet's CSV ("Prénom;Nom;E-mail", 300 rows, a few bad, one formula), accepts the
guessed columns, reads the warnings, downloads the rejected rows, confirms, and goes on to
send the tickets. Each page is saved at 1440 and 390 px and must not scroll sideways.

Clicks from the event page to the send page: 6 (Import guests, choose the file, Upload and
check, Use these columns, Confirm, Next: send tickets); before the mapping step it was 6 too
(…, Confirm, the event in the breadcrumbs, Send tickets) and imported blank names."""

import csv
import io

import pytest
from django.urls import reverse

from accounts.models import Membership
from accounts.services import account_create, membership_add
from guests.models import Attendee
from guests.services import event_create
from tests.browser.conftest import PASSWORD, login
from tests.browser.screens import screenshot

pytestmark = pytest.mark.browser

ROWS = 300
BAD = {41: "pas-une-adresse", 142: "", 243: "=1+2@example.com"}  # data row → bad email
FORMULA_ROW = 77


def _csv() -> bytes:
    """What a French Excel saves as "CSV (séparateur : point-virgule)": Windows-1252."""
    lines = ["Prénom;Nom;E-mail;Table"]
    for n in range(1, ROWS + 1):
        first = '=HYPERLINK("http://evil.example/";"Gagner")' if n == FORMULA_ROW else f"Zoé{n}"
        email = BAD.get(n, f"invite{n}@example.com")
        quoted = '"' + first.replace('"', '""') + '"'  # a cell holding ; and " is quoted
        lines.append(f"{quoted};Dupré;{email};{n % 30}")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def _fits(page, name: str) -> None:
    overflows = screenshot(page, name)
    assert overflows == {1440: 0, 390: 0}, f"{name} scrolls sideways: {overflows}"


def test_coordinator_imports_a_french_csv_through_the_mapping_step(page):
    account = account_create(name="Acme Events").account
    membership_add(account=account, username="stella", role=Membership.Role.STAFF,
                   password=PASSWORD)
    event = event_create(account=account, name="Gala de printemps")
    clicks = 0

    login(page, "stella")
    page.goto(reverse("admin:guests_event_change", args=[event.pk]))
    page.get_by_role("link", name="Import guests").first.click()
    clicks += 1
    page.wait_for_selector('input[name="file"]')
    _fits(page, "import-upload")

    page.set_input_files('input[name="file"]', files=[
        {"name": "invités.csv", "mimeType": "text/csv", "buffer": _csv()}])
    page.click('input[value="Upload and check"]')
    clicks += 2  # choosing the file, then the button

    # The mapping step: Herald's guess, in words, one select per column.
    page.wait_for_selector("#mapping")
    assert "Which column is which?" in page.content()
    assert [page.input_value(f"#id_column_{i}") for i in range(4)] == [
        "first_name", "last_name", "email", ""]
    warnings = page.inner_text("#mapping-warnings")
    assert "Not imported: the column “Table”" in warnings
    assert "Herald read it as Windows text" in warnings  # the file is not UTF-8
    _fits(page, "import-mapping")

    # A slip (the email column ignored) is refused in words, the choice kept to correct.
    page.select_option("#id_column_2", "")
    page.click('input[name="_mapping"]')
    page.wait_for_selector("#mapping-errors")
    assert "Choose the column that holds the email addresses" in page.inner_text(
        "#mapping-errors")
    assert "No column holds" not in page.inner_text("#mapping-warnings")  # said once
    assert "Not imported: the columns “E-mail”, “Table”" in page.inner_text("#mapping-warnings")
    assert page.input_value("#id_column_0") == "first_name"
    _fits(page, "import-mapping-error")
    page.select_option("#id_column_2", "email")  # (the slip and its fix are not counted)
    page.click('input[name="_mapping"]')
    clicks += 1

    # The preview: counts, the formula warning with its line, the rejected rows.
    page.wait_for_selector("#row-errors")
    counts = " ".join(page.inner_text("#counts").split())
    assert f"Rows in the file: {ROWS}" in counts and "With errors (not imported): 3" in counts
    warnings = " ".join(page.inner_text("#warnings").split())
    assert f"1 row had a cell that a spreadsheet would run as a formula (it starts with =, +, " \
           f"- or @), line {FORMULA_ROW + 1}" in warnings
    errors = page.inner_text("#row-errors")
    assert "pas-une-adresse" in errors and "runs as a formula" in errors
    assert "Zoé1" in page.inner_text("#preview")  # the accents read right
    with page.expect_download() as download:
        page.click("#rejected-csv")
    rejected = download.value.path().read_bytes().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(rejected), delimiter=";"))
    assert [row[0] for row in rows] == ["Line", "42", "143", "244"]
    assert rows[3][4] == "'=1+2@example.com"  # formula-safe
    _fits(page, "import-preview")

    valid = ROWS - len(BAD)
    page.click(f'input[value="Confirm: import {valid} valid rows"]')
    clicks += 1
    page.wait_for_selector(f"text=Imported: {valid}")
    assert Attendee.objects.filter(event=event).count() == valid
    formula = Attendee.objects.get(email=f"invite{FORMULA_ROW}@example.com")
    assert formula.first_name.startswith("'=HYPERLINK(")
    assert Attendee.objects.get(email="invite1@example.com").first_name == "Zoé1"
    _fits(page, "import-done")

    assert page.locator("text=See the guests").get_attribute("href").endswith(
        f"?event__id__exact={event.pk}")
    page.click("text=Next: send tickets")
    clicks += 1
    page.wait_for_url(f"**{reverse('admin:guests_event_send_form', args=[event.pk])}")
    assert clicks == 6
