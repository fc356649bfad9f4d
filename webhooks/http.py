"""One signed POST to a vetted address: pinned IP, Host/SNI kept, no redirects, capped reads.

urllib3 pools are kept per (scheme, vetted IP, port, host name), so keep-alive works across
deliveries while every request still goes to an address checked just before it.
"""

import threading
import time
from dataclasses import dataclass

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError

from webhooks.ssrf import Target

_pools: dict[tuple[str, str, int, str], urllib3.HTTPConnectionPool] = {}
_pools_lock = threading.Lock()
_MAX_POOLS = 512
USER_AGENT = "Herald-Webhooks/1.0"


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    body: bytes
    error: str
    duration_ms: int
    timed_out: bool = False  # no answer within the timeout (connect or read)


def _pool(target: Target, address: str) -> urllib3.HTTPConnectionPool:
    key = (target.scheme, address, target.port, target.host)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            if len(_pools) >= _MAX_POOLS:
                _pools.pop(next(iter(_pools))).close()
            if target.scheme == "https":
                pool = urllib3.HTTPSConnectionPool(
                    address, target.port, maxsize=8, block=False, cert_reqs="CERT_REQUIRED",
                    server_hostname=target.host, assert_hostname=target.host,
                )
            else:
                pool = urllib3.HTTPConnectionPool(address, target.port, maxsize=8, block=False)
            _pools[key] = pool
        return pool


def post(*, target: Target, body: bytes, headers: dict[str, str], timeout: float,
         max_bytes: int) -> Outcome:
    """POST ``body``; never follows redirects, reads at most ``max_bytes`` of the answer."""
    started = time.monotonic()
    all_headers = {"Host": target.host_header, "Content-Type": "application/json",
                   "User-Agent": USER_AGENT, **headers}
    error = "no address to connect to"
    for address in target.addresses[:3]:
        try:
            status, data = _post_once(_pool(target, address), target.path, body, all_headers,
                                      timeout, max_bytes, started)
            return Outcome(status, data, "", _elapsed_ms(started))
        except NewConnectionError as exc:
            error = f"connection failed: {exc}"
            continue
        except (HTTPError, OSError) as exc:
            timed_out = isinstance(exc, TimeoutError | urllib3.exceptions.TimeoutError)
            return Outcome(None, b"", f"{type(exc).__name__}: {exc}"[:1000], _elapsed_ms(started),
                           timed_out=timed_out)
    return Outcome(None, b"", error[:1000], _elapsed_ms(started))


def _post_once(pool: urllib3.HTTPConnectionPool, path: str, body: bytes,
               headers: dict[str, str], timeout: float, max_bytes: int,
               started: float) -> tuple[int, bytes]:
    response = pool.urlopen(
        "POST", path, body=body, headers=headers, redirect=False, retries=False,
        timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
        preload_content=False, decode_content=False, assert_same_host=False,
    )
    chunks, size, eof = [], 0, False
    try:
        # read1 returns what has arrived, so a receiver dripping bytes hits the deadline.
        while size <= max_bytes and time.monotonic() - started < timeout:
            chunk = response.read1(max_bytes + 1 - size)
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
            size += len(chunk)
    except (HTTPError, OSError):
        eof = False
    if eof:
        response.release_conn()  # body fully read: the connection can be reused
    else:
        response.close()  # huge or slow body: drop the connection instead of draining it
        response.release_conn()
    return response.status, b"".join(chunks)[:max_bytes]


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
