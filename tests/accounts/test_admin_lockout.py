"""The admin login's attempt limit (django-axes): failed logins are counted per user and per
client address in the database; past the limit the login page says it is locked (429, the
admin's template), even to the right password, until the cool-off ends or an owner unlocks;
API keys are not concerned."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from accounts.services import account_create, membership_add

PASSWORD = "right-password-1"
LOGIN = "/admin/login/?next=/admin/"
LOCKED_TEMPLATE = "admin/accounts/login_locked.html"


@pytest.fixture(autouse=True)
def policy(settings):
    """The shipped policy, stated here so that the test says what it checks."""
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


@pytest.fixture
def alice(keys):
    return membership_add(account=keys.account, username="alice", role=Membership.Role.STAFF,
                          password=PASSWORD).user


@pytest.fixture
def bob(keys):
    return membership_add(account=keys.account, username="bob", role=Membership.Role.STAFF,
                          password=PASSWORD).user


def _login(username: str, password: str, address: str = "127.0.0.1") -> tuple[Client, object]:
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN, {"username": username, "password": password})
    return client, response


def _logged_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def _fail(username: str, times: int, address: str = "127.0.0.1") -> list[int]:
    return [_login(username, "wrong-password", address)[1].status_code for _ in range(times)]


def _is_lockout_page(response) -> bool:
    html = response.content.decode()
    return (response.status_code == 429
            and LOCKED_TEMPLATE in [t.name for t in response.templates]
            and "Too many failed logins: logging in is locked for 15 minutes." in html
            and "Unlock the members' admin logins" in html)


def test_five_wrong_passwords_lock_the_login_even_for_the_right_password(alice):
    assert _fail("alice", 4) == [200] * 4  # the login form with its usual error
    _, fifth = _login("alice", "wrong-password")
    assert _is_lockout_page(fifth)

    client, right = _login("alice", PASSWORD)
    assert _is_lockout_page(right)
    assert not _logged_in(client)


def test_the_user_stays_locked_from_another_address(alice):
    _fail("alice", 5)
    client, response = _login("alice", PASSWORD, address="198.51.100.7")
    assert _is_lockout_page(response) and not _logged_in(client)


def test_another_user_from_the_same_address_is_locked_too_per_the_address_limit(alice, bob):
    """Five failures from one address, spread over made-up usernames (password spraying),
    lock the address: bob cannot log in from it, and can from elsewhere."""
    for name in ("root", "admin", "test", "guest", "alice"):
        _fail(name, 1)
    _, same_address = _login("bob", PASSWORD)
    assert _is_lockout_page(same_address)
    client, elsewhere = _login("bob", PASSWORD, address="198.51.100.7")
    assert elsewhere.status_code == 302 and _logged_in(client)


def test_with_the_per_user_policy_other_users_at_the_address_are_not_locked(settings, alice,
                                                                            bob):
    settings.AXES_LOCKOUT_PARAMETERS = ["username"]  # AXES_LOCKOUT_PARAMETERS=username
    _fail("alice", 5)
    assert _is_lockout_page(_login("alice", PASSWORD)[1])
    client, response = _login("bob", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_a_successful_login_forgets_earlier_failures(alice):
    _fail("alice", 4)
    client, response = _login("alice", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)
    assert _fail("alice", 4) == [200] * 4  # counting starts again


def test_the_lock_lifts_after_the_cool_off(alice):
    _fail("alice", 5)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    client, response = _login("alice", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def _unlock(user, account) -> list[str]:
    client = Client()
    client.force_login(user)
    response = client.post(reverse("admin:accounts_account_changelist"),
                           {"action": "unlock_logins", "_selected_action": [account.pk]})
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_an_owner_unlocks_a_member_and_others_may_not(keys, alice):
    _fail("alice", 5, address="198.51.100.7")  # someone else's guesses
    staff = Client()
    staff.force_login(membership_add(account=keys.account, username="stan",
                                     role=Membership.Role.STAFF).user)
    url = reverse("admin:accounts_account_changelist")
    action = {"action": "unlock_logins", "_selected_action": [keys.account.pk]}
    staff.post(url, action)
    assert _is_lockout_page(_login("alice", PASSWORD)[1])  # staff may not unlock

    owner = Client()
    owner.force_login(membership_add(account=keys.account, username="olga").user)
    response = owner.post(url, action)
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Acme Events: unlocked alice."]
    client, response = _login("alice", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_the_unlock_keeps_the_address_count(keys, alice, bob):
    """An unlock lifts the user's lock only: the address that made the guesses stays locked
    (for every user), and its count is not reset for further guesses."""
    _fail("alice", 5, address="198.51.100.7")
    olga = membership_add(account=keys.account, username="olga").user
    assert _unlock(olga, keys.account) == ["Acme Events: unlocked alice."]
    assert _is_lockout_page(_login("alice", PASSWORD, "198.51.100.7")[1])
    assert _is_lockout_page(_login("bob", PASSWORD, "198.51.100.7")[1])
    client, response = _login("alice", PASSWORD)  # from her own address
    assert response.status_code == 302 and _logged_in(client)
    assert AccessAttempt.objects.filter(ip_address="198.51.100.7").get().username is None


def test_an_owner_cannot_unlock_a_member_with_privileges_elsewhere(keys):
    """alice is owner of Alpha and support in Beta: the owner of Beta may not lift her lock
    (again and again, guessing her password without limit), nor a superuser's."""
    alpha, beta = account_create(name="Alpha").account, account_create(name="Beta").account
    membership_add(account=alpha, username="alice", password=PASSWORD)
    membership_add(account=beta, username="alice", role=Membership.Role.SUPPORT)
    membership_add(account=beta, username="root", role=Membership.Role.SUPPORT,
                   password=PASSWORD, is_superuser=True)
    mallory = membership_add(account=beta, username="mallory").user
    guesses = 0
    for _round in range(3):
        guesses += _fail("alice", 5, "198.51.100.7").count(200)
        _fail("root", 5, "198.51.100.8")
        assert _unlock(mallory, beta) == [
            "Beta: no member's login was locked.",
            "Beta: not unlocked alice, root: also a member of an account you do not own, or a "
            "superuser (a superuser unlocks them in Axes → Access attempts)."]
    assert guesses == 4  # the 5th is the lockout page
    assert _is_lockout_page(_login("alice", PASSWORD, "203.0.113.5")[1])
    assert _is_lockout_page(_login("root", PASSWORD, "203.0.113.5")[1])

    owner_of_both = membership_add(account=alpha, username="olga").user
    membership_add(account=beta, username="olga")
    assert _unlock(owner_of_both, beta)[0] == "Beta: unlocked alice."
    client, response = _login("alice", PASSWORD, "203.0.113.5")
    assert response.status_code == 302 and _logged_in(client)


def test_attempts_during_the_lock_do_not_prolong_it(alice):
    """Tries while locked are refused and not counted: the lock ends 15 minutes after the
    failure that set it, however often someone tries meanwhile."""
    _fail("alice", 5, "198.51.100.7")
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=14))
    assert _is_lockout_page(_login("alice", "wrong-password", "198.51.100.7")[1])
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=2))
    client, response = _login("alice", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_a_successful_login_keeps_the_address_count_of_other_users(keys, bob):
    """A login of one's own forgets one's own failures only: guesses at other users from
    the address still count (axes' reset would clear them all)."""
    membership_add(account=keys.account, username="mallory", password="mallory-pass-1")
    for name in ("root", "admin", "alice", "mallory"):
        _fail(name, 1, "198.51.100.7")
    assert _login("mallory", "mallory-pass-1", "198.51.100.7")[1].status_code == 302
    assert _fail("guest", 1, "198.51.100.7") == [200]  # 4 failures left at the address
    assert _is_lockout_page(_login("test", "wrong-password", "198.51.100.7")[1])
    assert _is_lockout_page(_login("bob", PASSWORD, "198.51.100.7")[1])


def test_a_superuser_sees_and_clears_address_lockouts_in_the_axes_admin(alice):
    _fail("alice", 5, address="203.0.113.9")
    root = get_user_model().objects.create_superuser("root", password=None)
    client = Client()
    client.force_login(root)
    page = client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200 and "203.0.113.9" in page.content.decode()
    attempt = AccessAttempt.objects.get(ip_address="203.0.113.9")
    client.post("/admin/axes/accessattempt/", {"action": "delete_selected", "post": "yes",
                                               "_selected_action": [attempt.pk]})
    assert not AccessAttempt.objects.exists()


def test_api_keys_are_not_affected(api, alice):
    """A locked address (the admin's) does not touch API authentication, and failed API
    keys are not admin login failures."""
    _fail("alice", 5)
    assert api.get("/checkin/v1/api/event").status_code != 429
    response = api.post("/checkin/v1/api/event", {"name": "Still open"})
    assert response.status_code == 201, response.content

    attempts = AccessAttempt.objects.count()
    bad = Client(HTTP_AUTHORIZATION="Bearer live_nope",
                 HTTP_OCP_APIM_SUBSCRIPTION_KEY=api.keys.subscription_key)
    for _ in range(10):
        assert bad.post("/checkin/v1/api/event", {"name": "x"},
                        content_type="application/json").status_code == 401
    assert AccessAttempt.objects.count() == attempts


def test_the_policy_is_read_from_the_environment():
    env = {**os.environ, "AXES_FAILURE_LIMIT": "3", "AXES_COOLOFF_MINUTES": "0",
           "AXES_LOCKOUT_PARAMETERS": "username+ip_address", "DJANGO_SETTINGS_MODULE":
           "config.settings"}
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import "
         "settings as s; print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME, "
         "s.AXES_LOCKOUT_PARAMETERS)"],
        env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "3 None [['username', 'ip_address']]"
