"""Failed authentications: counted per presented key and per client address.

Keys carry 256 random bits, so nobody guesses one; what this guards against is a client that
keeps failing (a stale worker with a revoked key, a script trying a leaked list, someone
guessing the subscription key of a known bearer key). After ``HERALD_AUTH_FAILURE_LIMIT``
failures within ``HERALD_AUTH_FAILURE_WINDOW_SECONDS`` of one presented bearer key, or of one
client address, a request that fails authentication again is answered 429 with
``Retry-After`` instead of 401. A request that authenticates is never refused here: other
clients' failures at the same address (a NAT, a proxy) cannot lock a valid key out.

The client address is ``REMOTE_ADDR``, unless that peer is one of
``HERALD_TRUSTED_PROXIES`` (CIDRs): then ``X-Forwarded-For`` is read from the right,
skipping trusted hops, and the first untrusted address is the client. A client-sent
``X-Forwarded-For`` from an untrusted peer changes nothing.

The counters are ``api.ratelimit``'s: in Redis when one is configured (shared by every
web process), else in this process.
"""

import hashlib
import ipaddress
from functools import lru_cache

from django.conf import settings
from rest_framework.exceptions import Throttled

from api.ratelimit import counters

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr.strip())


def _trusted(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request) -> str:
    """The address of the client that sent this request (see the module's docstring)."""
    peer = request.META.get("REMOTE_ADDR", "")
    networks = _networks(tuple(settings.HERALD_TRUSTED_PROXIES))
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not _trusted(hop, networks):
            return hop
    return peer  # every hop is one of our proxies: the request started inside


def _presented_key(request) -> str:
    """A digest of the presented ``Authorization`` header (the same key, however spelled)."""
    header = request.META.get("HTTP_AUTHORIZATION", "").strip()
    return hashlib.sha256(header.encode()).hexdigest()[:32] if header else ""


def auth_failure_record(request) -> Throttled | None:
    """Count one failed authentication of this request's key and address (once per request:
    the authentication class and the 401 handler both call it). Returns the 429 to answer
    instead of the 401 when either is over the limit (``Retry-After``: until its window
    ends), else None."""
    if getattr(request, "_herald_auth_failure_counted", False):
        return None
    request._herald_auth_failure_counted = True
    limit, window = settings.HERALD_AUTH_FAILURE_LIMIT, settings.HERALD_AUTH_FAILURE_WINDOW_SECONDS
    subjects = {"from this address": f"authfail:address:{client_address(request)}"}
    if key := _presented_key(request):
        subjects["with this key"] = f"authfail:key:{key}"
    over = [(what, name) for what, name in subjects.items()
            if counters.incr(name, expiry=window) > limit]
    if not over:
        return None
    wait = max(max(1, round(counters.expires_in(name))) for _, name in over)
    what = " and ".join(what for what, _ in over)
    return Throttled(wait=wait, detail=(
        f"Too many failed authentications {what}; retry in {wait} s."))
