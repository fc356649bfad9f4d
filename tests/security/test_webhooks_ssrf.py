"""The SSRF guard: only http(s) to public addresses, checked at save and at every delivery;
WEBHOOKS_ALLOW_PRIVATE_URLS lets development receivers on 127.0.0.1 through."""

import ipaddress

import pytest
from rest_framework.test import APIClient

from common import ssrf

BLOCKED = [
    "http://127.0.0.1/hook", "http://127.8.9.10:8080/hook", "http://localhost/hook",
    "http://10.0.0.5/hook", "http://172.16.3.4/hook", "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data", "http://0.0.0.0/hook", "http://100.64.0.1/",
    "http://224.0.0.1/hook", "http://240.0.0.1/hook", "http://255.255.255.255/",
    "http://[::1]/hook", "http://[::]/hook", "http://[fe80::1]/hook", "http://[fc00::1]/hook",
    "http://[ff02::1]/hook", "http://[::ffff:127.0.0.1]/hook", "http://[::ffff:8.8.8.8]/hook",
    "http://[2002:7f00:1::]/hook", "http://2130706433/hook", "http://0x7f.1/hook",
]


@pytest.mark.parametrize("url", BLOCKED)
def test_non_public_addresses_are_refused(settings, url):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    with pytest.raises(ssrf.UnsafeUrl):
        ssrf.url_resolve(url)


@pytest.mark.parametrize("url", [
    "ftp://93.184.215.14/x", "file:///etc/passwd", "gopher://93.184.215.14/", "//93.184.215.14/",
    "http:///x", "https://u:p@93.184.215.14/", "http://93.184.215.14:99999/", "http://a b/",
    "https://" + "a" * 2050, "", "http://no-such-host.invalid/",
])
def test_malformed_or_unresolvable_urls_are_refused(settings, url):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    with pytest.raises(ssrf.UnsafeUrl):
        ssrf.url_resolve(url)


def test_public_addresses_pass_and_keep_the_host(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    target = ssrf.url_resolve("https://93.184.215.14:8443/hooks?a=1")
    assert (target.scheme, target.port, target.path) == ("https", 8443, "/hooks?a=1")
    assert target.addresses == ("93.184.215.14",)
    assert target.host_header == "93.184.215.14:8443"
    assert ssrf.url_resolve("http://[2606:4700::1111]/").host_header == "[2606:4700::1111]"


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "93.184.215.14"])
def test_public_address_has_no_problem(address):
    assert ssrf.address_problem(ipaddress.ip_address(address)) is None


def test_development_setting_allows_loopback(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    assert ssrf.url_resolve("http://127.0.0.1:9/hook").addresses == ("127.0.0.1",)
    assert ssrf.url_resolve("http://[::1]:9/hook").addresses == ("::1",)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://10.1.2.3/hook",
                                 "http://169.254.169.254/", "http://[::1]/",
                                 "http://[::ffff:127.0.0.1]/"])
def test_api_refuses_private_urls_unless_configured(settings, keys, url):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys.live_key}")
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    response = client.post("/v1/webhooks", {"url": url}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert response.json()["error"].startswith("url: ")
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = True
    assert client.post("/v1/webhooks", {"url": url}, format="json").status_code == 201
