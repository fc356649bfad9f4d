"""Properties checked with hypothesis over many generated cases:

- the sandboxed renderer only ever fails with a controlled error, and what it renders never
  shows Python or jinja2 internals (reprs of functions, classes, memory addresses);
- the atomic ``POST /checkin/v1/api/guest`` is idempotent on ``id`` whatever the sequence of
  repeated and interleaved posts: one attendee and at most one delivery per id;
- the lifecycle: whatever order, duplication and batching of provider events reach
  ``comms.lifecycle.provider_events_apply``, a delivery never moves to a lower rank and each
  provider event is recorded once.

Every test is derandomized: CI runs the same cases each time.
"""

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2 import TemplateError

from comms.lifecycle import provider_events_apply
from comms.models import RANK, Delivery, DeliveryEvent
from comms.providers.base import ProviderEvent
from guests.models import Attendee
from templates.rendering import Rendered, TemplateCompileError, render, template_check
from tests.conftest import guest


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])

# --- the renderer -------------------------------------------------------------------------

# Expressions a template author (or an attacker) may write: tokens, globals jinja2 offers,
# attribute walks towards internals, filters, arithmetic that fails.
EXPRESSIONS = [
    "firstName", "lastName", "email", "event.name", "event.venue", "event.startsAt",
    "event.missing.deeper", "nosuchtoken", "attendeeInvitationId", "correlationId",
    "firstName | upper", "firstName | default('Guest')", "event.name | length",
    "firstName ~ lastName", "firstName[0]", "firstName[:3]", "items | join(', ')",
    "items | first", "items | sort | list", "meta.a.b", "meta['x']", "1 / 0", "1 // 0",
    "[1, 2] + 3", "'a' * 3", "2 ** 8", "none.x", "firstName.upper()",
    "firstName.format(1)", "'{0.__class__}'.format(firstName)", "range(3) | list",
    "dict(a=1)", "namespace(a=1).a", "lipsum", "lipsum(1, false, 2, 3)", "cycler",
    "cycler(1, 2).next()", "joiner", "range", "self", "dict", "namespace", "firstName.upper",
    "items.append", "''.__class__", "''.__class__.__mro__", "''.__class__.__mro__[1]",
    "cycler.__init__.__globals__", "self._TemplateReference__context", "self.__dict__",
    "firstName.__class__.__base__.__subclasses__()", "lipsum.__globals__",
    "range.__globals__", "event.__class__", "items.__len__", "config", "request",
    "(1).__class__", "loop", "super()", "caller",
]
STATEMENTS = [
    "{% for x in items %}{{ x }},{% endfor %}",
    "{% for x in range(5) %}{{ loop.index }}{% endfor %}",
    "{% if firstName %}Hi{% else %}Hello{% endif %}",
    "{% set n = namespace(c=0) %}{% for x in items %}{% set n.c = n.c + 1 %}{% endfor %}"
    "{{ n.c }}",
    "{% macro m(a) %}<{{ a }}>{% endmacro %}{{ m(firstName) }}",
    "{% raw %}{{ not rendered }}{% endraw %}",
    "{% with a = firstName %}{{ a }}{% endwith %}",
    "{% filter upper %}{{ lastName }}{% endfilter %}",
]

text_chunks = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
                      max_size=12)
fragments = st.one_of(
    text_chunks,
    st.sampled_from(EXPRESSIONS).map(lambda e: "{{ " + e + " }}"),
    st.sampled_from(STATEMENTS),
    st.sampled_from(["{{", "}}", "{%", "%}", "{#", "#}", "{{ }}", "{% endfor %}", "|", "'"]),
)
sources = st.lists(fragments, max_size=8).map("".join)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                         st.floats(allow_nan=False, allow_infinity=False), text_chunks)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(text_chunks, inner, max_size=4)),
    max_leaves=12)
contexts = st.fixed_dictionaries(
    {"firstName": text_chunks, "lastName": text_chunks, "email": text_chunks,
     "event": st.fixed_dictionaries({"name": text_chunks, "venue": text_chunks}),
     "items": st.lists(st.one_of(st.integers(-100, 100), text_chunks), max_size=5)},
    optional={"meta": json_values, "correlationId": text_chunks},
)

# Errors the delivery pipeline turns into a "template_error" failure. Anything else (a
# MemoryError, a RecursionError, an internal error of jinja2) would be out of control.
CONTROLLED = (TemplateError, ArithmeticError, TypeError, ValueError, LookupError)
# What must never reach a recipient: reprs of code objects and memory addresses.
LEAK = re.compile(r"<(function|class|built-in|bound method|method|module|TemplateReference"
                  r"|jinja2|Context)\b|\bat 0x[0-9a-fA-F]+|jinja2\.|__globals__|__builtins__")


def _render(source: str, context: dict[str, Any]) -> Rendered | Exception:
    """Compile-check as a save does, then render as a send does: the Rendered or the error."""
    try:
        template_check(subject="Ticket", html_body=source, text_body=source)
    except TemplateCompileError as exc:
        return exc
    try:
        return render(cache_key=(f"fuzz-{uuid.uuid4()}", 1), subject=source, html_body=source,
                      text_body=source, context=context)
    except Exception as exc:
        return exc


@fuzz(400)
@given(source=sources, context=contexts)
def test_renderer_fails_only_with_controlled_errors(source, context):
    outcome = _render(source, context)
    if isinstance(outcome, Exception):
        assert isinstance(outcome, (*CONTROLLED, TemplateCompileError)), (
            f"{source!r} raised {type(outcome).__name__}: {outcome}")
        assert not LEAK.search(str(outcome)), f"{source!r}: error leaks internals: {outcome}"


@fuzz(400)
@given(source=sources, context=contexts)
def test_rendered_output_never_shows_internals(source, context):
    outcome = _render(source, context)
    if isinstance(outcome, Rendered):
        for part in (outcome.subject, outcome.html, outcome.text):
            match = LEAK.search(part)
            assert match is None, f"{source!r} rendered internals: {part[:300]!r}"


# --- idempotency of the atomic path ---------------------------------------------------------

posts = st.lists(
    st.tuples(st.integers(0, 2), st.booleans(), st.sampled_from(["Jane", "Janet", ""])),
    min_size=1, max_size=8)


@fuzz(30)
@given(sequence=posts)
def test_repeated_and_interleaved_guest_posts_are_idempotent(api, event_id, template_id,
                                                             sequence):
    ids = [str(uuid.uuid4()) for _ in range(3)]
    first_answer: dict[str, dict] = {}
    for index, with_template, first_name in sequence:
        body = guest(event_id, template_id if with_template else None, id=ids[index],
                     firstName=first_name)
        response = api.post("/checkin/v1/api/guest", body)
        assert response.status_code == 200, response.content
        answer = response.json()
        # A repeat answers exactly what the first post created, whatever it carries.
        expected = first_answer.setdefault(ids[index], answer)
        assert answer == expected
    for attendee_id in {ids[index] for index, _, _ in sequence}:
        assert Attendee.objects.filter(id=attendee_id).count() == 1
        assert Delivery.objects.filter(owner_id=attendee_id).count() <= 1
        invitation = first_answer[attendee_id]["attendeeInvitationId"]
        if invitation:
            assert list(Delivery.objects.filter(owner_id=attendee_id)
                        .values_list("id", flat=True)) == [uuid.UUID(invitation)]


# --- the lifecycle state machine ------------------------------------------------------------

KINDS = ["sent", "delivered", "deferred", "opened", "clicked", "bounced", "dropped",
         "spam_reported", "unsubscribed", "resubscribed", "failed", "blocked"]
T0 = datetime(2026, 4, 29, 20, 0, tzinfo=UTC)

# A pool of distinct provider events (id → kind, time); a run feeds any of them, in any
# order, any number of times, split into batches of any size.
pool = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 3600)), min_size=1,
                max_size=8)


def _provider_event(delivery: Delivery, n: int, kind: str, seconds: int,
                    by_message_id: bool) -> ProviderEvent:
    bounce_type = "blocked" if kind == "blocked" else ("bounce" if kind == "bounced" else "")
    return ProviderEvent(
        provider="sendgrid", provider_event_id=f"evt-{delivery.id}-{n}",
        event="bounced" if kind == "blocked" else kind,
        occurred_at=T0 + timedelta(seconds=seconds),
        delivery_id=None if by_message_id else str(delivery.id),
        provider_message_id=delivery.provider_message_id, recipient=delivery.recipient,
        reason="550 5.1.1 No such user" if bounce_type else "", bounce_type=bounce_type,
        raw={"n": n},
    )


@pytest.fixture
def sent_delivery(api, event_id, template_id):
    def make() -> Delivery:
        # A new address each time: an earlier case's bounce suppressed the previous one.
        body = guest(event_id, template_id, email=f"guest-{uuid.uuid4().hex[:12]}@example.com")
        response = api.post("/checkin/v1/api/guest", body)
        delivery = Delivery.objects.get(id=response.json()["attendeeInvitationId"])
        assert delivery.status == "sent" and delivery.provider_message_id
        return delivery
    return make


@fuzz(60)
@given(events=pool, data=st.data())
def test_provider_events_never_move_a_delivery_backwards(sent_delivery, events, data):
    delivery = sent_delivery()
    by_message_id = data.draw(st.lists(st.booleans(), min_size=len(events),
                                       max_size=len(events)))
    feed = data.draw(st.lists(st.integers(0, len(events) - 1), min_size=1, max_size=16))
    cuts = data.draw(st.lists(st.integers(1, 4), min_size=len(feed), max_size=len(feed)))
    rank, fed, start = RANK[delivery.status], set(), 0
    while start < len(feed):
        batch = feed[start:start + cuts[start]]
        start += len(batch)
        provider_events_apply([
            _provider_event(delivery, n, *events[n], by_message_id[n]) for n in batch])
        fed.update(batch)
        status = Delivery.objects.values_list("status", flat=True).get(id=delivery.id)
        assert RANK[status] >= rank, f"moved back from rank {rank} to {status!r}"
        rank = RANK[status]
    recorded = list(DeliveryEvent.objects.filter(delivery=delivery)
                    .exclude(provider_event_id=None).values_list("provider_event_id", flat=True))
    assert sorted(recorded) == sorted(f"evt-{delivery.id}-{n}" for n in fed)
    best = max([RANK["sent"]] + [RANK[_status_of(events[n][0])] for n in fed])
    assert rank == best


def _status_of(kind: str) -> str:
    """The status an event kind moves a delivery to ("sent" for those that move nothing)."""
    return {"delivered": "delivered", "opened": "opened", "clicked": "clicked",
            "bounced": "bounced", "dropped": "dropped", "spam_reported": "spam_reported",
            "unsubscribed": "unsubscribed", "failed": "failed", "blocked": "failed"}.get(
                kind, "sent")
