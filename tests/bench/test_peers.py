"""The peers' counting (issue 20 item 7): what `make bench`'s races read from the receiving
servers. smtp-sink's counters and dump give the messages, sessions and recipients as the
aiosmtpd handler did; the fake SendGrid counts each recipient the hand-built anymail task
sends, one request each."""

import os
import smtplib
import time

import pytest
from django.test import override_settings

from bench import peer
from bench.anymail_peer import API_KEY, CountingSendGrid, Counts

SMTP_SINK = os.access("/usr/sbin/smtp-sink", os.X_OK) or bool(peer.shutil.which("smtp-sink"))
if os.environ.get("HERALD_REQUIRE_SMTP_SINK") and not SMTP_SINK:  # CI (.ci/run) installs it
    raise RuntimeError("HERALD_REQUIRE_SMTP_SINK is set but Postfix's smtp-sink is missing")


def _until(check, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.skipif(not SMTP_SINK, reason="needs Postfix's smtp-sink (apt-get install postfix)")
def test_smtp_sink_counts_messages_sessions_and_each_recipient():
    sink = peer.SmtpSink()
    try:
        with smtplib.SMTP("127.0.0.1", sink.port) as before:  # counted before the reset only
            before.sendmail("a@example.com", ["early@example.com"], b"Subject: x\r\n\r\nx\r\n")
        _until(lambda: sink.connections == 2)  # the readiness probe's session too
        sink.reset()
        for _ in range(2):
            with smtplib.SMTP("127.0.0.1", sink.port) as session:
                for i in range(3):
                    session.sendmail("a@example.com", [f"user{i}@example.com"],
                                     b"Subject: x\r\n\r\nbody\r\n")
        _until(lambda: sink.connections == 2)
        assert (sink.messages, sink.connections) == (6, 2)
        assert sink.recipients == {f"user{i}@example.com": 2 for i in range(3)}
        assert 0 < sink.first <= sink.last
    finally:
        sink.stop()


@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning")
def test_the_task_per_email_reaches_the_counting_fake_one_request_each():
    from bench.anymail_tasks import send_ticket

    counts = Counts()
    fake = CountingSendGrid(counts).start()
    try:
        with override_settings(EMAIL_BACKEND="anymail.backends.sendgrid.EmailBackend",
                               ANYMAIL={"SENDGRID_API_KEY": API_KEY,
                                        "SENDGRID_API_URL": f"{fake.url}/v3/"}):
            for i in range(2):
                send_ticket(f"user{i}@example.com", f"User {i}")
        assert (counts.messages, counts.connections) == (2, 2)
        assert counts.recipients == {"user0@example.com": 1, "user1@example.com": 1}
        body = fake.messages[0].body
        assert body["subject"] == "Your ticket, User 0"
        assert {c["type"] for c in body["content"]} == {"text/plain", "text/html"}
    finally:
        fake.stop()
