"""Middleware of the whole site."""

import sys
from io import IOBase

from django.conf import settings
from django.core.exceptions import RequestDataTooBig

from common import logs, request_id


class RequestIdMiddleware:
    """Every request gets an id (``common.request_id``): the caller's ``X-Request-Id`` when
    well-formed, else a new one. It is current while the request runs (its log records and
    the deliveries it creates carry it) and answered as ``X-Request-Id`` on every response.
    First in ``MIDDLEWARE``: the errors of the layers below (404, 413, 500 in the family's
    shape) are responses by the time they reach it, so they carry the header too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        logs.clear()
        with request_id.bound(request_id.accepted(request.META.get("HTTP_X_REQUEST_ID"))) as rid:
            request.request_id = rid
            try:
                response = self.get_response(request)
            finally:
                # The fields the request bound (its account) end with it, and stay on the
                # request for the 4xx line Django logs about it after this returns.
                request.log_fields = logs.bound()
                logs.clear()
        response[request_id.HEADER] = rid
        return response


class HealthMiddleware:
    """``/healthz`` and ``/readyz`` (config/health.py) answered here, before the host check
    (``ALLOWED_HOSTS``), the HTTPS redirect and the session: a load balancer's or a kubelet's
    probe comes by the instance's own address over plain HTTP, and costs nothing more."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from config import health

        view = health.VIEWS.get(request.path_info)
        return view(request) if view is not None else self.get_response(request)


class ChunkedBodyMiddleware:
    """A body sent without Content-Length (``Transfer-Encoding: chunked``) reaches Django's
    WSGI request as an empty one (a ``LimitedStream`` of length 0), so a view would answer as
    if nothing was sent. Give the request a stream over ``wsgi.input`` instead, read nothing
    here: the body is read when a view parses it — after authentication, so a 401 or a 404
    never reads it (gunicorn then drains at most 64 KB and closes the connection) — and never
    more than one byte past ``DATA_UPLOAD_MAX_MEMORY_SIZE``: beyond it the read is Django's
    ``RequestDataTooBig``, as for a declared length (each family's 413). ASGI requests never
    have ``wsgi.input``: Django spools and measures their bodies itself."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        if ("chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
                and not meta.get("CONTENT_LENGTH") and "wsgi.input" in meta):
            request._stream = CappedBody(meta["wsgi.input"], meta,
                                         settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        return self.get_response(request)


class CappedBody(IOBase):
    """A body of unknown length, read lazily from ``stream`` and refused past ``limit`` bytes.

    Until it is read through, its request declares the limit as ``CONTENT_LENGTH`` (a body is
    there, at most that long: what DRF and Django's parsers ask before they read); at its end
    the length read. Django's ``body`` asks for one byte past the limit, so the body held in
    memory is never bigger than for a declared length."""

    def __init__(self, stream, meta: dict, limit: int | None) -> None:
        self._stream = stream
        self._meta = meta
        self._limit = limit
        self._size = 0
        meta["CONTENT_LENGTH"] = str(limit if limit is not None else sys.maxsize)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1, /) -> bytes:
        """``size`` bytes, fewer only at the body's end (so a short read tells its length)."""
        room = self._room(size)
        if room < 0:  # no limit, all of it
            data = self._counted(self._stream.read(), size)
            self._counted(b"", size)  # and its end
            return data
        parts, wanted = [], room
        while wanted > 0:
            part = self._counted(self._stream.read(wanted), wanted)
            if not part:
                break
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)

    def readline(self, size: int | None = -1, /) -> bytes:
        return self._counted(self._stream.readline(self._room(size)), size)

    def _room(self, size: int | None) -> int:
        """How much of ``size`` may be read: up to one byte past the limit (enough to know
        the body is too big), never further."""
        self._refuse_if_too_big()
        if self._limit is None:
            return -1 if size is None else size
        room = self._limit + 1 - self._size
        return room if size is None or size < 0 else min(size, room)

    def _counted(self, data: bytes, size: int | None) -> bytes:
        self._size += len(data)
        self._refuse_if_too_big()
        if not data and size != 0:  # the end: the length is known now
            self._meta["CONTENT_LENGTH"] = str(self._size)
        return data

    def _refuse_if_too_big(self) -> None:
        if self._limit is not None and self._size > self._limit:
            raise RequestDataTooBig("Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.")
