"""The admin dashboard: sends and outcomes per day, per account and per event, drawn as
server-rendered SVG (no JavaScript, no CDN). It counts live sends only: a test key's
sandbox rehearsal never shows as real traffic or real failures."""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from comms.models import FAILURES, Delivery, Status

# Outcome groups, in stacking order, with their colours.
GROUPS = [
    ("pending", "#9aa5b1", {Status.SCHEDULED, Status.QUEUED, Status.SENDING}),
    ("sent", "#4c8bf5", {Status.SENT}),
    ("delivered", "#2f9e44", {Status.DELIVERED}),
    ("opened", "#0b7285", {Status.OPENED, Status.CLICKED}),
    ("failed", "#e03131", set(FAILURES)),
]
GROUP_OF = {status: name for name, _, statuses in GROUPS for status in statuses}


@dataclass
class Bar:
    day: date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def daily(deliveries: QuerySet[Delivery], *, days: int = 14,
          mode: str = Delivery.Mode.LIVE) -> list[Bar]:
    """One bar per day of the last ``days``, counts per outcome group (one query), of the
    deliveries sent in ``mode``."""
    today = timezone.localdate()
    start = today - timedelta(days=days - 1)
    rows = (deliveries.filter(created_at__date__gte=start, mode=mode)
            .annotate(day=TruncDate("created_at")).values("day", "status")
            .annotate(n=Count("id")))
    bars = {start + timedelta(days=i): Bar(start + timedelta(days=i),
                                           {name: 0 for name, _, _ in GROUPS})
            for i in range(days)}
    for row in rows:
        bar = bars.get(row["day"])
        if bar is not None:
            bar.counts[GROUP_OF[row["status"]]] += row["n"]
    return list(bars.values())


def chart(bars: list[Bar], *, width: int = 640, height: int = 160) -> dict[str, Any]:
    """SVG geometry for a stacked bar chart: rects with their titles, and axis labels."""
    top = max((b.total for b in bars), default=0) or 1
    slot = width / max(len(bars), 1)
    rects = []
    for index, bar in enumerate(bars):
        y = float(height)
        for name, colour, _ in GROUPS:
            value = bar.counts[name]
            if not value:
                continue
            h = value / top * (height - 10)
            y -= h
            rects.append({"x": round(index * slot + 2, 1), "y": round(y, 1),
                          "w": round(slot - 4, 1), "h": round(h, 1), "colour": colour,
                          "title": f"{bar.day:%d %b}: {value} {name}"})
    labels = [{"x": round(i * slot + slot / 2, 1), "text": f"{b.day:%d %b}"}
              for i, b in enumerate(bars) if i % 2 == 0]
    return {"width": width, "height": height, "rects": rects, "labels": labels, "top": top}


def funnel(deliveries: QuerySet[Delivery], *, mode: str = Delivery.Mode.LIVE) -> dict[str, int]:
    """Deliveries sent in ``mode`` per outcome group."""
    counts = {name: 0 for name, _, _ in GROUPS}
    for row in deliveries.filter(mode=mode).values("status").annotate(n=Count("id")):
        counts[GROUP_OF[row["status"]]] += row["n"]
    return counts
