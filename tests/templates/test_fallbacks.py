"""Spec 004's ``{{name | Guest}}`` fallback: rewritten only in output expressions, only to
plain text, never to code."""

import pytest

from templates.rendering import TemplateCompileError, fallbacks, render, template_check


@pytest.mark.parametrize(("source", "expected"), [
    ("Hi {{name | Guest}}!", 'Hi {{ (name) or "Guest" }}!'),
    ("{{ contact.meta.tier | standard plan }}", '{{ (contact.meta.tier) or "standard plan" }}'),
    ('{{name | "Dear friend"}}', '{{ (name) or "Dear friend" }}'),
    ("{{- name | Guest -}}", '{{- (name) or "Guest" -}}'),
    ("{{ x | upper }}", "{{ x | upper }}"),  # a filter stays a filter
    ('{% set x = "{{a | ~ 7*7 ~}}" %}{{x}}', '{% set x = "{{a | ~ 7*7 ~}}" %}{{x}}'),
    ("{% raw %}{{a | Guest}}{% endraw %}", "{% raw %}{{a | Guest}}{% endraw %}"),
    ("{# {{a | Guest}} #}", "{# {{a | Guest}} #}"),
    ("{{a | 7*7}}", "{{a | 7*7}}"),  # not plain text: left for the compiler to refuse
    ("{{a | x ~ y}}", "{{a | x ~ y}}"),
])
def test_rewrites(source, expected):
    assert fallbacks(source) == expected


def test_text_inside_a_tag_string_stays_text():
    out = render(cache_key=("fallback-tag", 1), subject="", html_body="",
                 text_body='{% set x = "{{a | ~ 7*7 ~}}" %}{{x}}', context={}, fallback=True)
    assert out.text == "{{a | ~ 7*7 ~}}"


def test_html_fallbacks_are_escaped_and_others_still_refused():
    out = render(cache_key=("fallback-html", 1), subject="{{ name | Guest }}",
                 html_body="<p>{{ name | Fish & Chips }}</p>", text_body="", context={},
                 fallback=True)
    assert (out.subject, out.html) == ("Guest", "<p>Fish &amp; Chips</p>")
    with pytest.raises(TemplateCompileError):
        template_check(subject="{{ a | 7*7 }}", html_body="", text_body="", fallback=True)
    with pytest.raises(TemplateCompileError):  # outside event templates: a typo is an error
        template_check(subject="{{ a | Guest }}", html_body="", text_body="")
