"""The render budget's guard points (``templates.rendering``'s docstring): loops, recursion and
heavy expressions stop with ``RenderLimitError`` soon after ``HERALD_RENDER_SECONDS``, without
a trace hook. A render no guard stops is cut by an alarm and fails, instead of hanging."""

import gc
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

from templates import rendering
from templates.rendering import RenderLimitError, SecurityError, render

SECONDS = 0.2
BIG = {"items": list(range(100_000)), "event": {"name": "Gala"}, "firstName": "Jane"}
RUNAWAYS = {
    "nested-empty-loops": "{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}"
                          "{% endfor %}",
    "filtered-loop": "{% for i in range(9999) %}{% for j in range(9999) if j < 0 %}"
                     "{% endfor %}{% endfor %}",
    "recursive-macro": "{% macro r(n) %}{% if n %}{{ r(n - 1) }}{{ r(n - 1) }}{% endif %}"
                       "{% endmacro %}{{ r(40) }}",
    "recursive-for": "{% for n in range(40) recursive %}{% if n %}{{ loop(range(n)) }}{% endif %}"
                     "{% endfor %}",
    "caller-recursion": "{% macro r(n) %}{% if caller %}{{ caller() }}{% endif %}{% if n %}"
                        "{% call r(n - 1) %}{{ r(n - 1) }}{% endcall %}{% endif %}{% endmacro %}"
                        "{{ r(40) }}",
    "heavy-filters": "{{ items|sum }}" * 1_900,  # within the 10,000 tokens a template may hold
    "heavy-comparisons": "{% if -1 in items %}{% endif %}" * 900,
    "heavy-slices": "{% set l = items + items + items + items %}"
                    + "{% if l[1:] %}{% endif %}" * 900,
    "attribute-lookups": "{% for i in range(9999) %}{% for j in range(9999) %}"
                         "{% if event.name.x.y or event['name'] %}{% endif %}{% endfor %}"
                         "{% endfor %}",
    # One filter call consumes another's generator: each item ticks (``sum`` is quadratic).
    "sum-over-batch": "{% set l = (range(10000)|list) * 4 %}"
                      "{% if l|batch(1)|sum(start=[]) %}{% endif %}",
    # Heavy guard points read the clock: no run of 16 slow filter calls before a check.
    "slow-filter-calls": "{% set l = items[:50000] %}{% for i in range(100) %}"
                         "{% if l|pprint %}{% endif %}{% endfor %}",
    # ``join`` with autoescape lists its input first, then makes each item text: guarded too.
    "join-of-big-items": "{% set l = [range(1000)|list] * 20000 %}{% if l|join %}{% endif %}",
}


class _Hung(Exception):
    pass


@pytest.fixture
def alarm() -> Iterator[None]:
    """A render that no guard stops raises here after 5 s (Python checks signals between
    bytecodes), so the test fails instead of hanging."""
    def hung(*_: Any) -> None:
        raise _Hung("no guard stopped the render")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.setitimer(signal.ITIMER_REAL, 5)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def _render(source: str, context: dict[str, Any] | None = None) -> Any:
    return render(**_compiled(source), context=BIG if context is None else context)


def _compiled(source: str) -> dict[str, Any]:
    """The arguments of ``render`` for ``source``, compiled (and cached) before the clock
    starts: compiling 5,000 expressions takes longer than rendering them."""
    arguments = {"cache_key": (f"guards-{hash(source)}", 1), "subject": "s",
                 "html_body": source, "text_body": ""}
    rendering._compiled(*arguments.values(), False)
    return arguments


@pytest.fixture
def collector_pauses() -> Iterator[list[float]]:
    """The seconds the cyclic garbage collector stopped the process, during the test.

    A render's budget is wall-clock time, and a full collection of the test process's heap
    (over 900 tests in one process in CI) can stop it for most of a second: no guard point
    runs meanwhile. The objects that exist before the test are frozen (``gc.freeze``) so a
    collection does not walk them, and whatever pauses remain are measured and reported."""
    pauses: list[float] = []
    started: list[float] = []

    def measure(phase: str, _info: dict) -> None:
        if phase == "start":
            started[:] = [time.monotonic()]
        elif started:
            pauses.append(time.monotonic() - started.pop())

    gc.collect()
    gc.freeze()
    gc.callbacks.append(measure)
    yield pauses
    gc.callbacks.remove(measure)
    gc.unfreeze()


@pytest.mark.parametrize("name", list(RUNAWAYS))
def test_runaway_renders_stop_soon_after_the_time_limit(settings, alarm, collector_pauses,
                                                        name):
    settings.HERALD_RENDER_SECONDS = SECONDS
    arguments = _compiled(RUNAWAYS[name])
    started = time.monotonic()
    with pytest.raises(RenderLimitError, match="too long"):
        render(**arguments, context=BIG)
    elapsed, collecting = time.monotonic() - started, sum(collector_pauses)
    assert elapsed - collecting < 2 * SECONDS, (
        f"{elapsed:.3f} s, of which {collecting:.3f} s in {len(collector_pauses)} collections")


def test_memory_growth_stops_at_the_memory_limit(settings, alarm):
    settings.HERALD_RENDER_SECONDS, settings.HERALD_RENDER_MAX_MB = 4, 40
    source = ("{% set ns = namespace(xs=[]) %}{% for i in range(5000) %}"
              "{% set ns.xs = ns.xs + [range(10000)|list] %}"
              "{% endfor %}{{ ns.xs|length }}")
    with pytest.raises(RenderLimitError, match="too much memory"):
        _render(source)


@pytest.mark.parametrize("source", [
    "{{ ((2 ** 1000) ** 1000) ** 1000 > 1 }}",
    "{% set a = 2 ** 1000 %}" + "{% set a = a * a %}" * 30 + "{{ a > 1 }}",
    "{% set a = 'a' * 100000 %}" + "{% set a = a + a %}" * 30 + "{{ a|length }}",
])
def test_single_steps_that_would_hang_are_refused_before_they_run(alarm, source):
    with pytest.raises(SecurityError):
        _render(source, {})


def test_guarded_loops_render_as_before(alarm):
    source = ("{% for x in items %}{{ loop.index }}/{{ loop.length }}{{ ',' if not loop.last }}"
              "{% endfor %}|{% for x in items if x > 5 %}{{ x }}{% else %}none{% endfor %}|"
              "{% for node in tree recursive %}{{ node.name }}({{ loop(node.kids) }}){% endfor %}"
              "|{{ items[1:] }}{{ 2 in items }}{{ [1] + [2] }}{{ 2 ** 10 }}")
    context = {"items": [1, 2, 3], "tree": [{"name": "a", "kids": [{"name": "b", "kids": []}]}]}
    assert _render(source, context).html == (
        "1/3,2/3,3/3|none|a(b())|[2, 3]True[1, 2]1024")


def test_templates_render_without_limits_outside_render():
    from templates.rendering import _text_env

    assert _text_env.from_string("{% for i in range(3) %}{{ i }}{% endfor %}").render() == "012"
