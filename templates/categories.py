"""A template's category: ``transactional`` (tickets, receipts: never unsubscribable) or a
topic its recipients can unsubscribe from (``event-updates``, ``marketing``). One check for
the API and the admin, and the account's topics for the preferences page."""

import re
from typing import Any

from templates.models import TRANSACTIONAL, MessageTemplate

MAX_LENGTH = 64
# Lower-case words joined by single hyphens: what shows in a List-Unsubscribe link's page and
# in the admin, and what no "*" (every topic) or "" (every message) can be.
TOPIC = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
PROBLEM = (f'Give "{TRANSACTIONAL}" or a topic: lower-case letters and digits, words joined '
           f"by hyphens (event-updates), at most {MAX_LENGTH} characters.")


def category_clean(value: Any) -> str:
    """The category as stored (trimmed, lower-cased); ValueError with ``PROBLEM`` if it is
    not one."""
    category = str(value or "").strip().lower()
    if not category:
        return TRANSACTIONAL
    if len(category) > MAX_LENGTH or not TOPIC.fullmatch(category):
        raise ValueError(PROBLEM)
    return category


def topics_of(*, account_id: Any) -> list[str]:
    """The topics of the account's templates (every category but transactional), sorted."""
    return sorted(set(MessageTemplate.objects.filter(account_id=account_id)
                      .exclude(category=TRANSACTIONAL)
                      .values_list("category", flat=True).distinct()))
