"""One-click unsubscribe (RFC 8058) and the preferences page's links, for emails whose
template has a topic (``MessageTemplate.category`` other than transactional).

Filled in by the unsubscribe work: ``render_tokens`` gives ``unsubscribe_url`` and
``preferences_url``; ``email_headers`` the ``List-Unsubscribe`` pair."""

from typing import Any

from comms.models import Delivery


def render_tokens(delivery: Delivery) -> dict[str, Any]:
    """The tokens a topic email's template may use: ``unsubscribe_url``, ``preferences_url``."""
    return {}


def email_headers(delivery: Delivery) -> tuple[tuple[str, str], ...]:
    """``List-Unsubscribe`` and ``List-Unsubscribe-Post`` for a topic email; none otherwise."""
    return ()
