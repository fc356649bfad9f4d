"""SSRF guard: a URL an account gave us may only reach public addresses over http(s).

The one guard of every outbound request an account can steer: customer webhook URLs, the
webhook channel's URLs, provider host overrides (``api_base``, ``endpoint_url``) and URLs
inside credentials (a service account's ``token_uri``). The host is resolved and every
address vetted when the setting is saved and again at every use; the request then connects
to the vetted address itself (``common.http``: keeping the Host header and TLS SNI), so a
DNS answer that changes in between (rebinding) cannot redirect it.
``WEBHOOKS_ALLOW_PRIVATE_URLS`` lifts the address check of webhook URLs for development and
tests; callers pass ``allow_private`` for their own switch
(``HERALD_PROVIDER_API_BASE_OVERRIDE`` for provider hosts).

A refusal's text reaches tenants (API 400s, deliveries, webhook attempts), so it is one of a
few fixed sentences: it never says what a name resolved to nor quotes the resolver, which
would map the platform's internal network for whoever asks. The detail goes to the server
log (``herald.ssrf``, INFO).
"""

import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048
# What a tenant is told when a host is refused: fixed texts, no address, no resolver message.
NOT_PUBLIC = "The URL's host is not allowed: it is not a public internet address."
NOT_RESOLVED = "The URL's host could not be resolved."

log = logging.getLogger("herald.ssrf")


class UnsafeUrl(ValueError):
    """The URL is malformed, not http(s), does not resolve, or reaches a non-public address."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written (the Host header and TLS server name)
    port: int
    path: str  # path and query, as sent in the request line
    addresses: tuple[str, ...]  # the vetted IPs, in resolver order

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def url_parse(url: str) -> tuple[str, str, int, str]:
    """Syntax only: (scheme, host, port, path?query)."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"Enter an http(s) URL of at most {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UnsafeUrl("The URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"Invalid URL: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl("Only http and https URLs are allowed.")
    if not parts.hostname:
        raise UnsafeUrl("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("Credentials in the URL are not allowed.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80), path


def address_problem(ip: IPAddress) -> str | None:
    """Why this address is not a public one, or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped address"
        if ip.is_site_local:  # fec0::/10, deprecated but still routed inside some networks
            return "a site-local address"
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and address_problem(embedded):
            return "a tunnel to a non-public address"
    for attribute, label in (
        ("is_unspecified", "unspecified"), ("is_loopback", "loopback"),
        ("is_link_local", "link-local"), ("is_multicast", "multicast"),
        ("is_private", "private"), ("is_reserved", "reserved"),
    ):
        if getattr(ip, attribute):
            return f"a {label} address"
    if not ip.is_global:
        return "a non-public address"
    return None


def _resolve(host: str, port: int) -> tuple[str, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        log.info("URL host %r refused: it does not resolve (%s)", host, exc)
        raise UnsafeUrl(NOT_RESOLVED) from None
    addresses: list[str] = []
    for info in infos:
        address = info[4][0].split("%", 1)[0]  # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        log.info("URL host %r refused: no address", host)
        raise UnsafeUrl(NOT_RESOLVED)
    return tuple(addresses)


def url_resolve(url: str, *, allow_private: bool | None = None) -> Target:
    """Parse, resolve and vet a URL; raises ``UnsafeUrl``. ``allow_private`` None: the
    webhooks' setting (``WEBHOOKS_ALLOW_PRIVATE_URLS``)."""
    scheme, host, port, path = url_parse(url)
    addresses = _resolve(host, port)
    if allow_private is None:
        allow_private = settings.WEBHOOKS_ALLOW_PRIVATE_URLS
    if not allow_private:
        for address in addresses:
            problem = address_problem(ipaddress.ip_address(address))
            if problem:
                log.info("URL host %r refused: it resolves to %s (%s)", host, problem, address)
                raise UnsafeUrl(NOT_PUBLIC)
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=addresses)
