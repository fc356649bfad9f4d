"""The engine's admin pages know no front end: check-in adds its event filter, its "Resend
ticket" and its dashboard sections by registering subclasses in ``guests.admin``."""

from django.contrib import admin

from comms.models import Dashboard, Delivery
from tests.test_architecture import FRONT_ENDS, ROOT, _imports


def test_the_engines_admin_imports_no_front_end():
    assert [name for _, name in _imports(ROOT / "comms" / "admin.py")
            if name.split(".")[0] in FRONT_ENDS] == []


def test_check_in_extends_the_delivery_pages_from_its_own_admin():
    deliveries, dashboard = admin.site._registry[Delivery], admin.site._registry[Dashboard]
    assert type(deliveries).__module__ == type(dashboard).__module__ == "guests.admin"
    assert ("attendee__event", admin.RelatedOnlyFieldListFilter) in deliveries.list_filter
    assert "resend_deliveries" in [a.__name__ for a in deliveries.actions]
