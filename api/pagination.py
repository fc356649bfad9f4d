"""Limit/offset paging for the check-in & comms family's list endpoints."""

from typing import Any

from django.db.models import QuerySet
from rest_framework import serializers


class PageQuery(serializers.Serializer):
    """Other query parameters (cache-busters) are ignored, not refused."""

    limit = serializers.IntegerField(min_value=1, max_value=100, default=50)
    offset = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)


def paginate(request: Any, queryset: QuerySet, serializer_class: type) -> dict[str, Any]:
    query = PageQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    limit, offset = query.validated_data["limit"], query.validated_data["offset"]
    rows = list(queryset[offset:offset + limit + 1])
    return {
        "items": serializer_class(rows[:limit], many=True).data,
        "limit": limit,
        "offset": offset,
        "hasMore": len(rows) > limit,
    }


def page_of(serializer_class: type, name: str) -> serializers.Serializer:
    """The OpenAPI shape of ``paginate``'s answer for ``serializer_class`` items."""
    from drf_spectacular.utils import inline_serializer

    return inline_serializer(name, fields={
        "items": serializer_class(many=True), "limit": serializers.IntegerField(),
        "offset": serializers.IntegerField(), "hasMore": serializers.BooleanField(),
    })
