import logging
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete

log = logging.getLogger(__name__)


class ContactsConfig(AppConfig):
    name = "contacts"

    def ready(self) -> None:
        from comms.signals import recipient_invalid

        recipient_invalid.connect(_push_token_forget, dispatch_uid="contacts.push_token_forget")
        post_delete.connect(_deliveries_detach, sender="contacts.Contact",
                            dispatch_uid="contacts.deliveries_detach")


def _deliveries_detach(*, instance: Any, **_: Any) -> None:
    from contacts.services import contact_deliveries_detach

    contact_deliveries_detach(contact_id=instance.pk)


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
