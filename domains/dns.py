"""Herald's own DNS check, record by record, so the admin shows what is still missing before
the provider agrees. Plain data in and out; the resolver is configurable (tests use a local
server)."""

from dataclasses import dataclass

import dns.exception
import dns.name
import dns.resolver

SUPPORTED = ("cname", "txt", "mx")


@dataclass(frozen=True)
class Resolver:
    nameservers: tuple[str, ...] = ()  # empty: the system's resolvers
    port: int = 53
    timeout: float = 5.0

    def build(self) -> dns.resolver.Resolver:
        resolver = dns.resolver.Resolver(configure=not self.nameservers)
        if self.nameservers:
            resolver.nameservers = list(self.nameservers)
        resolver.port = self.port
        resolver.timeout = resolver.lifetime = self.timeout
        resolver.cache = None
        return resolver


def records_check(records: list[dict], *, resolver: Resolver) -> list[dict]:
    """One ``{host, type, found, seen, error}`` per record: ``found`` when the DNS answers the
    expected data for that host; ``seen`` what it answered instead, ``error`` why nothing."""
    built = resolver.build()
    return [record_check(record, built) for record in records]


def record_check(record: dict, resolver: dns.resolver.Resolver) -> dict:
    kind, host = str(record.get("type", "")).lower(), str(record.get("host", ""))
    result = {"host": host, "type": kind, "found": False, "seen": [], "error": ""}
    if kind not in SUPPORTED:
        result["error"] = f"Herald does not check {kind or 'untyped'} records."
        return result
    try:
        answer = resolver.resolve(host, kind.upper(), raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        result["error"] = "No such name in the DNS (NXDOMAIN)."
        return result
    except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
        result["error"] = f"The DNS did not answer: {exc}"[:300]
        return result
    except dns.exception.DNSException as exc:
        result["error"] = f"DNS error: {exc}"[:300]
        return result
    seen = [_text(kind, rdata) for rdata in (answer.rrset or [])]
    result["seen"] = seen
    result["found"] = _matches(kind, str(record.get("data", "")), seen)
    if not seen:
        result["error"] = f"The name exists but has no {kind.upper()} record."
    return result


def _text(kind: str, rdata) -> str:
    if kind == "txt":
        return b"".join(rdata.strings).decode("utf-8", "replace")
    if kind == "mx":
        return str(rdata.exchange).rstrip(".").lower()
    return str(rdata.target).rstrip(".").lower()


def _matches(kind: str, expected: str, seen: list[str]) -> bool:
    if kind == "txt":
        return expected in seen
    if kind == "mx":
        # SendGrid writes an MX record's data as "mx.sendgrid.net" (priority apart).
        expected = expected.split()[-1] if expected.split() else ""
    return expected.rstrip(".").lower() in seen
