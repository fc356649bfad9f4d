import logging
from typing import Any

from django.apps import AppConfig

log = logging.getLogger(__name__)


class ContactsConfig(AppConfig):
    name = "contacts"

    def ready(self) -> None:
        from comms.signals import recipient_invalid

        recipient_invalid.connect(_push_token_forget, dispatch_uid="contacts.push_token_forget")


def _push_token_forget(*, account_id: Any, channel: str, address: str, delivery_id: Any,
                       **_: Any) -> None:
    """A push service said this token is unregistered: it leaves the account's contacts."""
    if channel != "push":
        return
    from contacts.services import push_tokens_remove_dead

    removed = push_tokens_remove_dead(account_id=account_id, token=address)
    if removed:
        log.info("Removed a dead push token (%d contact(s)) after delivery %s",
                 removed, delivery_id)
