"""Micro benchmark of the SMTP provider's message building: N messages (default 10,000) made
the old way (Django's ``EmailMultiAlternatives(...).message().as_bytes()`` plus the backend's
two ``sanitize_address`` calls) and the new way (``comms.providers.smtp.build_message``, the
hand-built bytes of ``comms.providers.mime``); prints µs per message for both. No network.

    .venv/bin/python bench/smtp_mime.py [messages]
"""

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")

HTML = ("<html><body><p>Hi Jane,</p><p>See you at <b>Spring Gala</b> on 2025-05-01 19:00 at the "
        "Town Hall.</p><p><a href=\"https://tickets.example.com/t/0123456789abcdef\">Your "
        "ticket</a></p>" + "<p>Doors open at 18:30. Bring this email or the QR code.</p>" * 20
        + "</body></html>")
TEXT = ("Hi Jane,\nSee you at Spring Gala on 2025-05-01 19:00 at the Town Hall.\n"
        "Your ticket: https://tickets.example.com/t/0123456789abcdef\n"
        + "Doors open at 18:30. Bring this email or the QR code.\n" * 5)


def main(messages: int) -> None:
    import django

    django.setup()
    from email.utils import formataddr, make_msgid

    from django.core.mail import EmailMultiAlternatives
    from django.core.mail.message import sanitize_address

    from comms.providers.base import EmailMessage
    from comms.providers.smtp import DELIVERY_HEADER, build_message

    def message(i: int, non_ascii: bool, html: str) -> EmailMessage:
        return EmailMessage(
            delivery_id=f"d-{i}", from_email="tickets@herald.localhost",
            from_name="Hérald Tickets" if non_ascii else "Herald",
            to_email=f"jane{i}@example.com", to_name="Zoë Müller" if non_ascii else "Jane Smith",
            subject="Your ticket for Spring Gala" + (" 🎉" if non_ascii else ""),
            html=html, text=TEXT, reply_to="support@co.example")

    def old(m: EmailMessage) -> bytes:
        mail = EmailMultiAlternatives(
            subject=m.subject, body=m.text, from_email=formataddr((m.from_name, m.from_email)),
            to=[formataddr((m.to_name, m.to_email))],
            headers={"Message-ID": make_msgid(domain="herald.localhost"),
                     DELIVERY_HEADER: m.delivery_id},
            reply_to=[m.reply_to])
        mail.attach_alternative(m.html, "text/html")
        sanitize_address(mail.from_email, "utf-8")
        sanitize_address(mail.to[0], "utf-8")
        return mail.message().as_bytes(linesep="\r\n")

    def new(m: EmailMessage) -> bytes:
        return build_message(m).data

    def timed(build: Callable[[EmailMessage], bytes], inputs: list[EmailMessage]) -> float:
        for m in inputs[:200]:  # warm up
            build(m)
        cpu = time.process_time()
        for m in inputs:
            build(m)
        return (time.process_time() - cpu) / len(inputs) * 1e6

    for label, non_ascii, html in (
            ("ASCII, HTML one 1.4 kB line (base64)", False, HTML),
            ("ASCII, HTML in short lines (7bit)", False, HTML.replace("</p>", "</p>\n")),
            ("non-ASCII names, emoji subject, HTML (base64)", True, HTML + "é")):
        inputs = [message(i, non_ascii, html) for i in range(messages)]
        size = len(new(inputs[0]))
        print(f"{label} ({size} bytes): Django {timed(old, inputs):.1f} µs/message CPU, "
              f"hand-built {timed(new, inputs):.1f} µs/message CPU")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
