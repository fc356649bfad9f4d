"""What the engine announces to whoever cares, without knowing who: a front end connects a
receiver (``contacts`` forgets a dead push token)."""

from django.dispatch import Signal

# A provider said an address is dead (an unregistered push token, a blocked chat): sent
# with ``account_id``, ``channel``, ``address`` and ``delivery_id``, after the delivery failed.
recipient_invalid = Signal()
