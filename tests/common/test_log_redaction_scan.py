"""The log redaction scans only text a secret pattern could match (common.logs): a value
without "/", ":", "=" or a scheme word before whitespace is passed as it is, so every other
text must come out exactly as the six patterns make it, and secrets stay masked."""

import random

from common import logs


def _every_pattern(text: str) -> str:
    """The redaction as it was: the six substitutions on every text."""
    for pattern, replacement in logs._TOKEN_IN_TEXT:
        text = pattern.sub(replacement, text)
    return text


SECRETS = [
    "redis://:pw-Secret3@10.0.0.1:6379/0", "GET /u/abc.def-ghi HTTP/1.1", "/botTOKEN123/send",
    "/hook?token=tok-Secret4&x=1", "Authorization: Bearer SG.abc", "bearer\tSG.abc",
    "Basic\u00a0dXNlcjpwYXNz", "TOKEN xyz", "checkinToken\": \"abc.def\"", "password=hunter2",
    "api-key: k-123", "'subscription-key': 'sub-1'", "secret=s3",
]
# What the pre-check passes as it is: a delivery line's ids, states, modes and message.
PLAIN = ["0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60", "queued", "live", "email", "delivery queued",
         "req-0b5f7c1e-8d2a-4e43-9a57-3f1c2d4e5f60", "herald.deliveries", "sendgrid", "12"]


def test_secrets_are_still_masked():
    for text in SECRETS:
        assert logs._redacted(text) == _every_pattern(text) != text, text


def test_plain_fields_are_not_scanned_and_come_out_unchanged():
    for text in PLAIN:
        assert logs._MAYBE_SECRET.search(text) is None, text
        assert logs._redacted(text) == text


def test_the_pre_check_never_skips_a_text_a_pattern_would_change():
    """Random texts over the characters and words the patterns look for."""
    parts = ["/", ":", "=", "@", "?", "&", " ", "\t", "\u00a0", "'", '"', "u", "bot", "Bearer",
             "basic", "TOKEN", "token", "password", "secret", "api-key", "apikey", "key", "x",
             "signature", "subscription-key", "redis", "1", "-", "_", ",", "}"]
    rng = random.Random(20)
    for _ in range(20_000):
        text = "".join(rng.choice(parts) for _ in range(rng.randint(1, 9)))
        assert logs._redacted(text) == _every_pattern(text), repr(text)


def test_a_delivery_line_redacts_only_its_text():
    event = {"event": "delivery queued", "delivery_id": PLAIN[0], "status": "queued",
             "timestamp": "2026-12-07T04:50:00.123456Z", "level": "info",
             "reason": "provider said token=tok-Secret9", "_record": object()}
    out = logs._redact(None, "info", dict(event))
    assert out["reason"] == "provider said token=<redacted>"
    assert {k: out[k] for k in event if k != "reason"} == {k: v for k, v in event.items()
                                                          if k != "reason"}
