"""The Redis broker transport survives losing Redis (issue 15, item 13; config/celery.py).

What a Celery worker does when its Redis goes away, step by step, on a real Redis that is
shut down: a message delivered and not yet acknowledged, a BRPOP pending on the consumer's
channel (as in the worker's event loop), then Celery's cleanup (``connection.collect()``,
then ``connection.close()`` under ``ignore_errors``). With kombu's own transport the second
close raises ``AttributeError: 'NoneType' object has no attribute 'hostname'``, which the
worker treats as unrecoverable; the end-to-end check is
tests/faults/test_faults.py::test_redis_down_under_a_draining_prefork_worker.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress

import pytest
import redis
from django.conf import settings
from kombu import Connection, Consumer, Exchange, Queue
from kombu.common import ignore_errors

from config.celery import RedisChannel
from tests.fakes.smtp_server import free_port

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server")

TRANSPORT = "config.celery:RedisTransport"


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    """A Redis of this test's own, which it shuts down."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            with suppress(redis.ConnectionError):
                if redis.Redis.from_url(url).ping():
                    break
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def lose_redis_under_a_consumer(url: str, transport: str) -> RedisChannel:
    """Deliver one message unacknowledged, leave a BRPOP pending, shut Redis down, then clean
    up as Celery's consumer does after a connection error. Raises what escapes the cleanup;
    returns the consumer's channel."""
    queue = Queue("outage", Exchange("outage"), "outage")
    connection = Connection(url, transport=transport)
    with connection.Producer() as producer:
        for n in range(3):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key="outage",
                             declare=[queue], serializer="json")
    channel = connection.default_channel
    received = []
    consumer = Consumer(channel, [queue], callbacks=[lambda body, msg: received.append(msg)],
                        accept=["json"], prefetch_count=1)
    consumer.consume()
    connection.drain_events(timeout=5)
    assert received and channel.qos._delivered, "one message delivered, not acknowledged"
    # A broadcast consumer on a channel of its own, as Celery's remote control (pidbox): its
    # close deletes its auto-delete queue, which fails while Redis is down.
    control = Queue("outage.control", Exchange("outage.control", type="fanout"),
                    auto_delete=True)
    Consumer(connection.channel(), [control], accept=["json"]).consume()
    channel._brpop_start()  # the event loop's pending BRPOP
    assert channel._in_poll
    redis.Redis.from_url(url).shutdown(nosave=True)
    # celery.worker.consumer.Consumer.on_connection_error_after_connected:
    with suppress(Exception):
        connection.collect(socket_timeout=5)
    ignore_errors(connection, connection.close)
    return channel


def test_herald_broker_transport_closes_cleanly_when_redis_is_lost(redis_url):
    channel = lose_redis_under_a_consumer(redis_url, TRANSPORT)
    assert isinstance(channel, RedisChannel)
    assert channel.closed, "the consumer's channel was closed once, despite the lost reply"


def test_a_closed_connection_asks_for_no_new_pool(redis_url):
    """Anything that still uses a channel of a closed connection (Celery closes its gossip
    and heartbeat channels late) gets the connection error every caller handles."""
    connection = Connection(redis_url, transport=TRANSPORT)
    channel = connection.channel()
    connection.collect()
    with pytest.raises(redis.exceptions.ConnectionError):
        channel._connparams()


def test_redis_brokers_use_it():
    """The settings select the transport for a Redis broker (the tests' broker is Redis in CI,
    kombu's filesystem queue when CELERY_BROKER_URL is unset)."""
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        assert settings.CELERY_BROKER_TRANSPORT == TRANSPORT
    else:
        assert not hasattr(settings, "CELERY_BROKER_TRANSPORT")
