"""Spec 004's event templates are Handlebars (``templates.handlebars``), compiled to the same
sandbox: each construct renders as handlebars.js 4 renders it (the expected texts below are
its output), the constructs left out are a 400 naming them, and the Jinja that event templates
held before still renders as it did."""

import time
from typing import Any

import pytest

from comms.models import Delivery
from templates import rendering
from templates.rendering import TemplateCompileError, render, template_check
from tests.notifications.test_api import V004

# (template, context, what handlebars.js renders), in an HTML body.
RENDERS = {
    "values": ("{{a}}|{{b}}|{{c}}|{{d}}|{{e}}|{{f}}|{{missing.deeper}}",
               {"a": [1, None, [2, 3], {}], "b": True, "c": None, "d": 1.0, "e": {}, "f": 0.1},
               "1,,2,3,[object Object]|true||1|[object Object]|0.1|"),
    "if-else": ("{{#if contact.name}}Hi {{contact.name}}{{else}}Hi there{{/if}}",
                {"contact": {"name": "Ann"}}, "Hi Ann"),
    "if-else-empty": ("{{#if contact.name}}Hi {{contact.name}}{{else}}Hi there{{/if}}",
                      {"contact": {"name": ""}}, "Hi there"),
    "truthiness": ("{{#if z}}T{{else}}F{{/if}}{{#if e}}T{{else}}F{{/if}}{{#if a}}T{{else}}F"
                   "{{/if}}{{#if s}}T{{else}}F{{/if}}{{#if n}}T{{else}}F{{/if}}"
                   "{{#if no}}T{{else}}F{{/if}}{{#if x includeZero=true}}Z{{/if}}",
                   {"z": 0, "e": {}, "a": [], "s": "", "n": None, "no": False, "x": 0},
                   "FTFFFFZ"),
    "else-if": ("{{#if a}}A{{else if b}}B{{else}}C{{/if}}", {"b": 1}, "B"),
    "unless": ("{{#unless a}}U{{else if b}}B{{/unless}}|{{#unless c}}none{{/unless}}",
               {"a": 1, "b": 1}, "B|none"),
    "each-object": ("{{#each o}}{{@key}}={{this}}@{{@index}}{{#if @first}}F{{/if}}"
                    "{{#if @last}}L{{/if}};{{/each}}", {"o": {"a": 1, "b": 2}},
                    "a=1@0F;b=2@1L;"),
    "each-list": ("{{#each items}}{{#if @first}}first {{/if}}{{name}} x{{qty}}"
                  "{{#unless @last}}, {{/unless}}{{/each}}",
                  {"items": [{"name": "a", "qty": 1}, {"name": "b", "qty": 2}]},
                  "first a x1, b x2"),
    "each-else": ("{{#each s}}x{{else}}empty{{/each}}|{{#each n}}x{{else}}e{{/each}}|"
                  "{{#each o}}{{@key}}{{else}}none{{/each}}", {"s": "abc", "n": None, "o": {}},
                  "empty|e|none"),
    "each-nested": ("{{#each xs}}{{#each ../ys}}{{@../index}}{{@index}} {{/each}}{{/each}}",
                    {"xs": [1, 2], "ys": [1, 2]}, "00 01 10 11 "),
    "each-scalars": ("{{#each a}}{{this}}{{/each}}", {"a": [True, None, 1.5]}, "true1.5"),
    "parents": ("{{#each xs}}{{name}}|{{../name}}|{{@root.name}}|{{this.name}};{{/each}}",
                {"name": "R", "xs": [{"name": "a"}, {}]}, "a|R|R|a;|R|R|;"),
    "block-params": ("{{#each xs as |x i|}}{{i}}:{{x.n}} {{/each}}{{#with p as |q|}}{{q.n}}"
                     "{{/with}}", {"xs": [{"n": "a"}, {"n": "b"}], "p": {"n": "c"}},
                     "0:a 1:b c"),
    "with": ("{{#with p}}{{n}}/{{../top}}{{/with}}|{{#with z}}yes{{else}}no{{/with}}|"
             "{{#with missing}}x{{else}}no {{this.top}}{{/with}}",
             {"p": {"n": "a"}, "z": 0, "top": "T"}, "a/T|yes|no T"),
    "each-of-this": ("{{#each xs}}{{@index}}{{#each this}}{{this}}{{/each}};{{/each}}",
                     {"xs": [[1, 2], [3]]}, "012;13;"),
    "with-this": ("{{this}}|{{#with this}}{{a}}{{/with}}|{{#with p}}{{#with this}}{{../a}}"
                  "{{/with}}{{/with}}", {"a": "A", "p": {"a": "P"}}, "[object Object]|A|A"),
    "with-in-each": ("{{#each xs}}{{#with this}}{{n}}{{/with}}{{/each}}",
                     {"xs": [{"n": 1}, {"n": 2}]}, "12"),
    "segments": ("{{a.[0]}} {{d.[e-f]}}", {"a": ["q"], "d": {"e-f": 3}}, "q 3"),
    "escaping": ("{{{a}}} {{&a}} {{a}}", {"a": "<b>&"}, "<b>& <b>& &lt;b&gt;&amp;"),
    "escaped-mustache": ("\\{{a}} {{a}}", {"a": "b"}, "{{a}} b"),
    "comments": ("a\n{{! c }}\nb {{!-- x }} --}}c", {}, "a\nb c"),
    "tilde": ("x {{~#if t~}}  y  {{~/if~}} z", {"t": 1}, "xyz"),
    "standalone": ("<ul>\n  {{#each xs}}\n  <li>{{this}}</li>\n  {{/each}}\n</ul>",
                   {"xs": [1, 2]}, "<ul>\n  <li>1</li>\n  <li>2</li>\n</ul>"),
    # handlebars.js keeps "x\r\n": jinja2 writes every newline as "\n", as it always has here
    "standalone-crlf": ("  {{#if a}}  \r\nx\r\n  {{/if}}  ", {"a": 1}, "x\n"),
    "prototype": ("{{constructor}}|{{__proto__}}|{{a.constructor}}|{{__class__}}",
                  {"a": "abc"}, "|||"),
    "fallback": ("{{#each xs}}{{name | Guest}} {{/each}}{{name | Guest}}",
                 {"xs": [{"name": "Ann"}, {}]}, "Ann Guest Guest"),
}


def _render(source: str, context: dict[str, Any], part: str = "html") -> str:
    out = render(cache_key=(f"hb-{hash(source)}", 1), subject="", html_body=source,
                 text_body=source, context=context, fallback=True)
    return out.html if part == "html" else out.text


@pytest.mark.parametrize("name", list(RENDERS))
def test_each_construct_renders_as_handlebars_does(name):
    source, context, expected = RENDERS[name]
    template_check(subject="s", html_body=source, text_body=source, fallback=True)
    assert _render(source, context) == expected


def test_raw_output_matters_only_in_html_bodies():
    context = {"a": "<b>&"}
    assert _render("{{a}}|{{{a}}}", context, "text") == "<b>&|<b>&"
    out = render(cache_key=("hb-subject", 1), subject="{{a}} {{{a}}}", html_body="",
                 text_body="", context=context, fallback=True)
    assert out.subject == "<b>& <b>&"


UNSUPPORTED = {
    "{{> header}}": "partials",
    "{{#> layout}}x{{/layout}}": "partial blocks",
    "{{#*inline \"x\"}}y{{/inline}}": "decorators",
    "{{*decorate}}": "decorators",
    "{{{{raw}}}}x{{{{/raw}}}}": "raw blocks",
    "{{uppercase name}}": "helper 'uppercase'",
    "{{lookup payload key}}": "helper 'lookup'",
    "{{#custom name}}x{{/custom}}": "{{#custom}}",
    "{{#person}}x{{/person}}": "{{#person}}",
    "{{^person}}x{{/person}}": "inverse sections",
    "{{#if (eq a b)}}x{{/if}}": "subexpressions",
    "{{#each items key=1}}x{{/each}}": "hash arguments",
    "{{#if a}}x": "never closed",
    "{{#if a}}x{{/each}}": "{{/each}} closes {{#if}}",
    "x{{/if}}": "closes nothing",
    "{{else}}": "outside a block",
    "{{#each items}}{{ name|upper }}{{/each}}": "Jinja syntax",
    "{{#each items}}{% if x %}y{% endif %}{{/each}}": "Jinja syntax",
    "{% if a %}{{#if b}}{% endif %}{{/if}}": "close the Handlebars block first",
    "{{@foo}}": "@foo",
    "{{#each this}}x{{/each}}": "whole context",
    "{{#if a}}" * 70 + "{{/if}}" * 70: "nested too deeply",
}


@pytest.mark.parametrize("source", list(UNSUPPORTED))
def test_what_is_not_supported_is_refused_naming_it(source):
    with pytest.raises(TemplateCompileError) as raised:
        template_check(subject="s", html_body=source, text_body="", fallback=True)
    assert raised.value.field == "htmlBody"
    assert UNSUPPORTED[source] in raised.value.message, raised.value.message


def test_errors_name_the_source_line_after_removed_lines():
    source = "a\n{{#if a}}\nb\n{{/if}}\n{{! gone }}\n{{ x | 7*7 }}"
    with pytest.raises(TemplateCompileError) as raised:
        template_check(subject="s", html_body=source, text_body="", fallback=True)
    assert raised.value.line == 6


@pytest.mark.parametrize(("source", "expected"), [
    ("Hi {{ name|upper }}", "Hi ANN"),
    ("{% if name %}Hi {{ name }}{% endif %}", "Hi Ann"),
    ("{{- name | Guest -}}!", "Ann!"),
    ("x\n  {{~ name ~ '!' ~}}\n  y", "xAnn!y"),
    ("{{ missing | Guest }} {{ payload.n * 2 }}", "Guest 4"),
    ("{% for x in payload.xs %}{{ x }}{{ loop.index }}{% endfor %}", "1122"),
    ("{% macro m(a) %}<{{ a }}>{% endmacro %}{{ m(name) }}", "<Ann>"),
    ("{# note #}{{#if name}}{% if payload.n %}{{name}}{% endif %}{{/if}}", "Ann"),
])
def test_the_jinja_event_templates_held_before_still_renders(source, expected):
    """A template valid in both renders the same; Jinja-only ones keep working, outside
    the blocks that change the context."""
    template_check(subject="s", html_body=source, text_body="", fallback=True)
    assert _render(source, {"name": "Ann", "payload": {"n": 2, "xs": [1, 2]}}) == expected


def test_other_templates_are_still_jinja_only():
    with pytest.raises(TemplateCompileError):
        template_check(subject="s", html_body="{{#if a}}x{{/if}}", text_body="")
    out = render(cache_key=("hb-not-event", 1), subject="", html_body="{{ a }}",
                 text_body="", context={"a": True})
    assert out.html == "True"  # Jinja's printing, as before


def test_an_unsupported_construct_is_a_400_on_the_events_api(v4):
    assert v4.post("/v1/events", HELLO).status_code == 201
    response = v4.post("/v1/events", {**HELLO, "identifier": "bad", "templates": [
        {**HELLO["templates"][0], "body": "{{> footer}}"}]})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR", body
    assert "templates[0].body" in body["error"] and "partials" in body["error"], body


HELLO = {"identifier": "user.hello", "name": "Hello", "channels": ["email"], "templates": [
    {"channel": "email", "subject": "{{#if contact.name}}Hi {{contact.name}}{{else}}Hi there"
                                    "{{/if}}",
     "body": "{{#if contact.name}}Hi {{contact.name}}{{else}}Hi there{{/if}}\n"
             "{{#each payload.items}}\n- {{name}} x{{qty}}\n{{/each}}\n{{! internal }}\n"
             "Total {{payload.total}}",
     "html": "<p>{{#if contact.name}}Hi {{contact.name}}{{else}}Hi there{{/if}}</p>"
             "{{{payload.banner}}}"}]}


@pytest.fixture
def v4(keys, django_capture_on_commit_callbacks, settings) -> V004:
    settings.HERALD_SANDBOX_DELAY_SECONDS = 0
    return V004(keys.live_key, django_capture_on_commit_callbacks)


def test_a_spec_004_send_renders_handlebars_both_ways(v4):
    assert v4.post("/v1/events", HELLO).status_code == 201, v4.get("/v1/events").content
    payload = {"items": [{"name": "Tea", "qty": 2}, {"name": "Cake", "qty": 1}],
               "total": 9.5, "banner": "<b>Sale</b>"}
    named = v4.post("/v1/send/user.hello/email", {
        "to": {"email": "ann@example.com", "name": "Ann"}, "payload": payload})
    anonymous = v4.post("/v1/send/user.hello/email", {
        "to": "nobody@example.com", "payload": payload})
    assert named.status_code == anonymous.status_code == 200, (named.content, anonymous.content)
    ann = Delivery.objects.get(id=named.json()["deliveries"][0]["email"])
    nobody = Delivery.objects.get(id=anonymous.json()["deliveries"][0]["email"])
    assert (ann.subject, nobody.subject) == ("Hi Ann", "Hi there")
    assert ann.text_body == "Hi Ann\n- Tea x2\n- Cake x1\nTotal 9.5"
    assert nobody.text_body.startswith("Hi there\n- Tea x2")
    assert ann.html_body == "<p>Hi Ann</p><b>Sale</b>"
    assert nobody.html_body == "<p>Hi there</p><b>Sale</b>"


def test_compiled_once_per_version():
    rendering._cache.clear()
    for _ in range(3):
        _render("{{#each xs}}{{this}}{{/each}}", {"xs": [1]})
    assert len(rendering._cache.items) == 1


@pytest.mark.parametrize("opener", ["{%", "{#", "{{", "{{!--", "{{{", "\\{{", "{{!", "{% raw %}"])
def test_reading_a_template_is_linear_even_when_nothing_closes(opener):
    """A closer is searched for once: 30,000 unclosed openers are read in well under a
    second (a regex spanning the text would take minutes)."""
    from templates.handlebars import HandlebarsError, to_jinja

    started = time.monotonic()
    try:
        to_jinja(opener * 30_000, filters=set())
    except HandlebarsError:
        pass
    assert time.monotonic() - started < 1


def test_an_event_template_stored_before_that_is_not_handlebars_fails_its_send(v4):
    """Saved before its content was checked as Handlebars (written as is): the send fails
    with the reason, as any template that cannot render."""
    from comms.models import Status
    from templates.models import MessageTemplate

    assert v4.post("/v1/events", HELLO).status_code == 201
    MessageTemplate.objects.filter(event__identifier="user.hello").update(
        text_body="{{> footer}}")
    response = v4.post("/v1/send/user.hello/email", {"to": "ann@example.com"})
    delivery = Delivery.objects.get(id=response.json()["deliveries"][0]["email"])
    assert delivery.status == Status.FAILED
    reason = delivery.events.get(status=Status.FAILED).detail["reason"]
    assert "could not be rendered" in reason and "partials" in reason, reason
