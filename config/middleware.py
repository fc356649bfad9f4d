"""Middleware of the whole site."""

from io import BytesIO

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream

from common import request_id


class RequestIdMiddleware:
    """Every request gets an id (``common.request_id``): the caller's ``X-Request-Id`` when
    well-formed, else a new one. It is current while the request runs (its log records and
    the deliveries it creates carry it) and answered as ``X-Request-Id`` on every response.
    First in ``MIDDLEWARE``: the errors of the layers below (404, 413, 500 in the family's
    shape) are responses by the time they reach it, so they carry the header too."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with request_id.bound(request_id.accepted(request.META.get("HTTP_X_REQUEST_ID"))) as rid:
            request.request_id = rid
            response = self.get_response(request)
        response[request_id.HEADER] = rid
        return response


class ChunkedBodyMiddleware:
    """A body sent without Content-Length (``Transfer-Encoding: chunked``) reaches Django's
    WSGI request as an empty one, so a view would answer as if nothing was sent. Read it here,
    at most one byte past ``DATA_UPLOAD_MAX_MEMORY_SIZE``, and give the request its length:
    views parse it as any other body, and one over the limit is Django's
    ``RequestDataTooBig`` as for a declared length (each family's 413). ASGI requests never
    have ``wsgi.input``: Django spools and measures their bodies itself."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        if ("chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
                and not meta.get("CONTENT_LENGTH") and "wsgi.input" in meta):
            body = _read_at_most(meta["wsgi.input"], settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
            meta["CONTENT_LENGTH"] = str(len(body))
            request._stream = LimitedStream(BytesIO(body), len(body))
        return self.get_response(request)


def _read_at_most(stream, limit: int | None) -> bytes:
    """The stream to its end, or ``limit + 1`` bytes of it (enough to know it is too big)."""
    if limit is None:
        return stream.read()
    parts, size = [], 0
    while size <= limit:
        part = stream.read(min(limit + 1 - size, 1 << 20))
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)
