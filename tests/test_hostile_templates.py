"""Hostile templates: nesting deeper than the parser goes is a 400 on every path that saves a
template (issue 15, item 7); no operation the sandbox exposes may grow the process by more than
a few tens of MB or run past its time budget (item 6)."""

import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import pytest
from django.conf import settings

from comms.models import Delivery, Status
from templates.models import MessageTemplate
from templates.rendering import SecurityError, render
from tests.test_notifications_api import ORDER, V004

DEEP = {
    "brackets": "{{ " + "(" * 300 + "firstName" + ")" * 300 + " }}",
    "blocks": "{% if firstName %}" * 300 + "x" + "{% endif %}" * 300,
    "loops": "{% for i in [1] %}" * 30 + "x" + "{% endfor %}" * 30,
    "operators": "{{ 1" + " + 1" * 300 + " }}",
    "filters": "{{ firstName" + "|trim" * 3000 + " }}",
}


@pytest.fixture
def v4(keys, django_capture_on_commit_callbacks) -> V004:
    return V004(keys.live_key, django_capture_on_commit_callbacks)


@pytest.mark.parametrize("kind", list(DEEP))
def test_a_deeply_nested_template_is_a_400_on_the_template_api(api, kind):
    response = api.post("/comms/v1/api/comms/template",
                        {"name": "Deep", "subject": "Hi", "htmlBody": DEEP[kind]})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "template_syntax_error"
    assert "nested too deeply" in body["message"], body


@pytest.mark.parametrize("kind", list(DEEP))
def test_a_deeply_nested_template_is_a_400_on_events(v4, kind):
    email = {**ORDER["templates"][0], "body": DEEP[kind]}
    response = v4.post("/v1/events", {**ORDER, "templates": [email, ORDER["templates"][2]]})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR", body
    assert "templates[0].body" in body["error"] and "nested too deeply" in body["error"], body


@pytest.mark.parametrize("kind", list(DEEP))
def test_a_deeply_nested_template_is_a_400_on_brands(api, kind):
    response = api.post("/v1/Brand/", {
        "Name": "Deep Co", "FromEmail": "hello@deep.example",
        "Templates": {"token": {"Subject": "Hi", "HtmlBody": DEEP[kind]}}})
    assert response.status_code == 400, response.content
    assert "nested too deeply" in response.json()["Error"], response.json()


def test_nesting_within_the_limits_still_saves(api):
    fine: dict[str, Any] = {
        "name": "Nested", "subject": "Hi",
        "htmlBody": "{{ " + "(" * 30 + "firstName" + ")" * 30 + " }}"
                    + "{% if firstName %}" * 30 + "x" + "{% endif %}" * 30}
    assert api.post("/comms/v1/api/comms/template", fine).status_code == 201


# --- item 6: every operation the sandbox exposes is bounded before it allocates -------------

S = "a" * 100_000  # one long text a send may carry (a payload field, a name)
MB = 1024 * 1024
# One template per family of operations; each asks for hundreds of MB to tens of GB in one
# step (or, for the last family, step by step).
FAMILIES = {
    # str methods
    "expandtabs": "{{ ('\t' * 100000).expandtabs(10000)|length }}",
    "str.replace": "{{ s.replace('a', s)|length }}",
    "str.replace-empty": "{{ s.replace('', s[:1000])|length }}",
    "str.join": "{{ s.join(['x'] * 10000)|length }}",
    "str.translate": "{{ s.translate({97: s})|length }}",
    "str.split": "{% set t = 'a ' * 50000 %}{% set t = t ~ t ~ t ~ t ~ t ~ t ~ t ~ t ~ t ~ t %}"
                 "{% set a = t.split() %}{% set b = t.split() %}{% set c = t.split() %}"
                 "{{ a|length + b|length + c|length }}",
    "str.format": "{{ ('{0}' * 1000).format(s)|length }}",
    "str.format_map": "{{ ('{a}' * 1000).format_map({'a': s})|length }}",
    "str.format-repr": "{{ '{0!r}'.format([s] * 10000)|length }}",
    # operators
    "percent": "{{ ('%(a)s' * 1000 % {'a': s})|length }}",
    "percent-precision": "{{ ('%.99999999f' % 1.0)|length }}",
    "tilde": "{{ (s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s ~ s)|length }}",
    "plus": "{{ (s + s + s + s + s + s + s + s + s + s + s)|length }}",
    "repeat": "{{ (s * 20)|length }}",
    "list-printed": "{{ [s] * 100000 }}",
    "list-in-tilde": "{{ ('x' ~ [s] * 10000)|length }}",
    # filters
    "string": "{{ ([s] * 10000)|string|length }}",
    "indent": "{{ ('\n' * 100000)|indent(10000)|length }}",
    "indent-by-text": "{{ ('\n' * 100000)|indent(s)|length }}",
    "wordwrap": "{{ s|wordwrap(5, wrapstring=s)|length }}",
    "replace": "{{ s|replace('a', s)|length }}",
    "join": "{{ ([s] * 10000)|join|length }}",
    "list-of-text": "{% set t = '€' * 100000 %}{% set t = t ~ t ~ t ~ t ~ t ~ t ~ t ~ t ~ t ~ t %}"
                    "{{ t|list|length }}",
    "format": "{{ '%s%s%s%s%s%s%s%s%s%s%s'|format(s, s, s, s, s, s, s, s, s, s, s)|length }}",
    "urlize": "{{ ('x.com ' * 10000)|urlize(target=s)|length }}",
    "tojson": "{{ ([s] * 10000)|tojson|length }}",
    "tojson-indent": "{{ ([[[1]]] * 10000)|tojson(indent=10000)|length }}",
    "pprint": "{{ ([s] * 10000)|pprint|length }}",
    "sort": "{{ ([s] * 100000)|sort|length }}",
    "sum": "{{ ([[s] * 100000] * 100)|sum(start=[])|length }}",
    # blocks: a macro's, a {% set %} block's and a filter block's output is joined at once
    "macro": "{% macro m() %}{% for i in range(10000) %}{{ s }}{% endfor %}{% endmacro %}"
             "{{ m()|length }}",
    "set-block": "{% set x %}{% for i in range(10000) %}{{ s }}{% endfor %}{% endset %}"
                 "{{ x|length }}",
    "filter-block": "{% filter length %}{% for i in range(10000) %}{{ s }}{% endfor %}"
                    "{% endfilter %}",
    # many small steps that keep what they make: the memory limit
    "accumulation": "{% set ns = namespace(l=[]) %}{% for i in range(10000) %}"
                    "{% set ns.l = ns.l + [s ~ i] %}{% endfor %}{{ ns.l|length }}",
}


def _peak_mb(step: Any) -> tuple[float, float, BaseException | None]:
    """Python's peak allocation (tracemalloc: every object, big strings included) while
    ``step`` runs, the seconds it took, and what it raised."""
    gc.collect()
    tracemalloc.start()
    started, raised = time.monotonic(), None
    try:
        step()
    except Exception as exc:  # returned to the test, which checks it
        raised = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1] / MB
        tracemalloc.stop()
    return peak, time.monotonic() - started, raised


# Each render runs in a process of its own (forked from one that imported the renderer, as a
# worker's are): the growth of its resident memory at the peak (VmHWM, reset just before the
# render, once the template is compiled) over what it was then, and the render's seconds.
_MEASURE = """
import json, os, sys, time
from templates import rendering

def status_mb(name):
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith(name)) / 1024

def measure(index, source, part):
    arguments = {"cache_key": ("m", index), "subject": "s", "html_body": "", "text_body": "",
                 part: source}
    rendering._compiled(*arguments.values(), False)
    context = {"s": "a" * 100_000}
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak (VmHWM) starts again from now
    before, started = status_mb("VmRSS:"), time.monotonic()
    try:
        rendering.render(**arguments, context=context)
        outcome = "rendered"
    except rendering.SecurityError as exc:
        outcome = f"refused: {exc}"
    except BaseException as exc:  # MemoryError…: the test shows it
        outcome = f"failed: {exc!r}"
    seconds = time.monotonic() - started
    return {"grew_mb": status_mb("VmHWM:") - before, "seconds": seconds, "outcome": outcome}

# Warm, as a worker is: the settings the limits are read from are loaded by the first render.
rendering.render(cache_key=("warm", 0), subject="s", html_body="x", text_body="", context={})
for index, (source, part) in enumerate(json.load(sys.stdin)):
    read, write = os.pipe()
    pid = os.fork()
    if not pid:
        os.close(read)
        os.write(write, json.dumps(measure(index, source, part)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as answer:
        result = answer.read()
    status = os.waitpid(pid, 0)[1]
    print(result.decode() or json.dumps({"grew_mb": 1e9, "seconds": 0,
                                         "outcome": f"died (wait status {status})"}))
"""
PARTS = ("html_body", "text_body")
CASES = [(family, part) for family in FAMILIES for part in PARTS]


@pytest.fixture(scope="module")
def measured() -> dict[tuple[str, str], dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE], capture_output=True, text=True, timeout=600,
        input=json.dumps([(FAMILIES[family], part) for family, part in CASES]),
        cwd=settings.BASE_DIR, env={**os.environ, "PYTHONPATH": "."})
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(zip(CASES, map(json.loads, done.stdout.splitlines()), strict=True))


@pytest.mark.parametrize("part", PARTS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_no_operation_grows_the_process_past_the_budget(measured, family, part):
    result = measured[(family, part)]
    assert result["outcome"].startswith("refused"), result
    assert result["grew_mb"] < 50, result
    assert result["seconds"] < 2, result


@pytest.mark.parametrize("source", [
    "{{ ','.join(['a', 'b']) }}|{{ 'x'.center(5, '-') }}|{{ 'a\tb'.expandtabs(2) }}|"
    "{{ 'aXa'.replace('X', 'yy') }}|{{ '{0}-{1:>3}'.format(1, 2) }}|{{ '%s=%05.1f' % ('v', 2.5) }}"
    "|{{ [1, 'a'] }}|{{ {'k': [1]}|tojson }}|{{ 'a b'|wordwrap(1) }}|{{ 'x\ny'|indent(2) }}"
    "|{{ ['b', 'A']|sort|join(',') }}|{{ [[1], [2]]|sum(start=[]) }}|{{ 'Hi'.upper() }}"
    "|{{ 'a,b'.split(',')|length }}|{{ {'a': 1}.get('a') }}|{{ (1.5).is_integer() }}"])
def test_bounded_operations_render_as_before(source):
    rendered = render(cache_key=("bounded", 1), subject="s", html_body="", text_body=source,
                      context={})
    assert rendered.text == (
        "a,b|--x--|a b|ayya|1-  2|v=002.5|[1, 'a']|{\"k\": [1]}|a\nb|x\n  y|A,b|[1, 2]|HI|2"
        "|1|False")


def test_long_lists_are_counted_and_walked_without_being_made_text():
    source = ("{{ ([s] * 100000)|length }}|{{ ([s] * 100000)|reverse|first|length }}|"
              "{{ ([s] * 100000)|list|count }}|{{ ([s] * 100000)[-1]|length }}")
    rendered = render(cache_key=("long-lists", 1), subject="s", html_body="",
                      text_body=source, context={"s": S})
    assert rendered.text == "100000|100000|100000|100000"


@pytest.mark.parametrize("source", [
    "{{ 'a'.maketrans('a', 'b') }}", "{{ 'a'.__len__() }}", "{{ [1].__class__ }}",
    "{{ (1).__add__(1) }}", "{{ dict.fromkeys([1]) }}"])
def test_methods_off_the_list_are_refused(source):
    with pytest.raises(SecurityError):
        render(cache_key=("refused", 1), subject="s", html_body="", text_body=source,
               context={})


@pytest.mark.parametrize("family", ["expandtabs", "str.replace", "join", "macro", "tojson"])
def test_saving_a_template_that_passes_the_limits_with_sample_data_is_a_400(api, family):
    source = "{% set s = firstName * 25000 %}" + FAMILIES[family]  # the sample's name, long
    peak, _, _ = _peak_mb(lambda: api.post("/comms/v1/api/comms/template",
                                           {"name": "Bomb", "subject": "Hi", "textBody": source}))
    response = api.post("/comms/v1/api/comms/template",
                        {"name": "Bomb", "subject": "Hi", "textBody": source})
    assert response.status_code == 400, response.content
    assert "render limits" in response.json()["message"], response.json()
    assert peak < 50


def test_saving_an_event_with_a_bomb_is_a_400(v4):
    email = {**ORDER["templates"][0], "body": FAMILIES["expandtabs"]}
    response = v4.post("/v1/events", {**ORDER, "templates": [email, ORDER["templates"][2]]})
    assert response.status_code == 400, response.content
    assert "templates[0].body" in response.json()["error"]
    assert "render limits" in response.json()["error"]


def test_a_send_whose_data_makes_the_render_too_large_fails_for_good(v4):
    """The template is fine with sample data; the payload of one send makes it explode: that
    delivery fails with the reason (never ``sent``), and the process does not grow."""
    bomb = {**ORDER["templates"][0], "body": "{{ payload.text.expandtabs(10000)|length }}"}
    assert v4.post("/v1/events", {**ORDER, "templates": [bomb, ORDER["templates"][2]]}
                   ).status_code == 201
    peak, _, raised = _peak_mb(lambda: v4.post("/v1/send/order.confirmed/email", {
        "to": "ann@example.com", "payload": {"text": "\t" * 100_000}}))
    assert raised is None and peak < 50, (raised, peak)
    delivery = Delivery.objects.get()
    assert delivery.status == Status.FAILED, delivery.status
    reason = delivery.events.filter(status=Status.FAILED).get().detail["reason"]
    assert "could not be rendered" in reason and "too large" in reason, reason


def test_a_template_stored_before_the_limits_fails_its_test_send_and_preview(api):
    """A template saved before these checks (written as is) fails "send a test to me" with
    the reason, and the admin preview says why, both without growing the process."""
    from django.test import Client
    from django.urls import reverse

    from accounts.models import Membership
    from accounts.services import membership_add
    from templates.services import template_send_test

    template = MessageTemplate.objects.create(
        account=api.keys.account, name="Old bomb", subject="Hi",
        text_body=FAMILIES["expandtabs"], html_body="<p>{{ firstName }}</p>")
    def send_test() -> None:
        with api.capture(execute=True):
            template_send_test(template=template, to="ops@example.com")

    peak, _, raised = _peak_mb(send_test)
    assert raised is None and peak < 50, (raised, peak)
    delivery = Delivery.objects.get()
    assert delivery.status == Status.FAILED
    assert "too large" in delivery.events.get(status=Status.FAILED).detail["reason"]
    membership = membership_add(account=api.keys.account, username="owner",
                                role=Membership.Role.OWNER)
    client = Client()
    client.force_login(membership.user)
    url = reverse("admin:templates_messagetemplate_change", args=[template.pk])
    peak, _, raised = _peak_mb(lambda: client.get(url))
    assert raised is None and peak < 50, (raised, peak)
    assert "Does not render" in client.get(url).content.decode()
