"""``manage.py check --deploy`` warns when HERALD_PUBLIC_BASE_URL (the host of the unsubscribe
and preferences links in emails) is left on a loopback address or plain HTTP with DEBUG off
(security review, #19); a public https address, DEBUG on, or a plain ``check`` says nothing."""

import pytest
from django.core import checks


def _warnings(*, deploy: bool = True) -> list[checks.CheckMessage]:
    found = checks.run_checks(include_deployment_checks=deploy, tags=[checks.Tags.security])
    return [message for message in found if message.id == "comms.W001"]


@pytest.mark.parametrize("url, said", [
    ("http://127.0.0.1:8000", "not https and a loopback address recipients cannot reach"),
    ("https://localhost", "a loopback address recipients cannot reach"),
    ("https://herald.localhost:8443", "a loopback address recipients cannot reach"),
    ("https://[::1]", "a loopback address recipients cannot reach"),
    ("https://0.0.0.0", "a loopback address recipients cannot reach"),
    ("http://herald.example.com", "not https"),
    ("herald.example.com", "not https and a loopback address recipients cannot reach"),
])
def test_a_loopback_or_plain_http_public_url_warns_on_deploy(settings, url, said):
    settings.DEBUG = False
    settings.HERALD_PUBLIC_BASE_URL = url

    [warning] = _warnings()

    assert warning.level == checks.WARNING
    assert warning.msg == f"HERALD_PUBLIC_BASE_URL is {url!r}: {said}."
    assert "https://herald.example.com" in warning.hint


def test_the_default_warns(settings):
    settings.DEBUG = False
    assert settings.HERALD_PUBLIC_BASE_URL == "http://127.0.0.1:8000"  # the settings' default
    assert len(_warnings()) == 1


@pytest.mark.parametrize("url", ["https://herald.example.com", "https://93.184.215.14:8443"])
def test_a_public_https_url_is_quiet(settings, url):
    settings.DEBUG = False
    settings.HERALD_PUBLIC_BASE_URL = url
    assert _warnings() == []


def test_debug_or_a_plain_check_is_quiet(settings):
    settings.HERALD_PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    settings.DEBUG = False
    assert _warnings(deploy=False) == []  # `make run`'s checks: the checkout's own default
    settings.DEBUG = True
    assert _warnings() == []
