"""A local authoritative DNS server (dnslib) on a free UDP port, for Herald's DNS checks.

    with LocalDns() as dns:
        dns.add("s1._domainkey.example.com", "CNAME", "s1.domainkey.u1.wl.sendgrid.net")
        settings.HERALD_DOMAIN_DNS_NAMESERVERS = [dns.host]
        settings.HERALD_DOMAIN_DNS_PORT = dns.port

Names it holds no record for answer NXDOMAIN; a known name without the asked type answers
NOERROR with no records.
"""

from __future__ import annotations

import threading

from dnslib import CNAME, MX, QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer

_BUILD = {"CNAME": CNAME, "TXT": TXT, "MX": MX}


class _Resolver(BaseResolver):
    def __init__(self) -> None:
        self.records: dict[str, list[tuple[str, str]]] = {}
        self.lock = threading.Lock()

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            held = list(self.records.get(name, []))
        if not held:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for kind, data in held:
            if kind == qtype or (kind == "CNAME" and qtype != "CNAME"):
                reply.add_answer(RR(name, getattr(QTYPE, kind), rdata=_BUILD[kind](data),
                                    ttl=60))
        return reply


class LocalDns:
    host = "127.0.0.1"

    def __init__(self) -> None:
        self._resolver = _Resolver()
        self._server: DNSServer | None = None

    def add(self, name: str, kind: str, data: str) -> None:
        with self._resolver.lock:
            self._resolver.records.setdefault(name.rstrip(".").lower(), []).append(
                (kind.upper(), data))

    def clear(self) -> None:
        with self._resolver.lock:
            self._resolver.records.clear()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server.server_address[1])

    def start(self) -> LocalDns:
        self._server = DNSServer(self._resolver, address=self.host, port=0,
                                 logger=DNSLogger("-request,-reply,-truncated,-error,-recv,"
                                                  "-send,-data", prefix=False))
        self._server.start_thread()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server.server.server_close()
            self._server = None

    def __enter__(self) -> LocalDns:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- pytest fixtures: import local_dns_fixture and local_dns_server_fixture ------------

try:
    import pytest
except ImportError:  # pragma: no cover - the server alone needs only dnslib
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session", name="local_dns_server")
    def local_dns_server_fixture():
        with LocalDns() as server:
            yield server

    @pytest.fixture(name="local_dns")
    def local_dns_fixture(local_dns_server, settings) -> LocalDns:
        """An empty local DNS server that Herald's DNS check asks (never the internet)."""
        local_dns_server.clear()
        settings.HERALD_DOMAIN_DNS_NAMESERVERS = [local_dns_server.host]
        settings.HERALD_DOMAIN_DNS_PORT = local_dns_server.port
        settings.HERALD_DOMAIN_DNS_TIMEOUT_SECONDS = 2.0
        return local_dns_server
