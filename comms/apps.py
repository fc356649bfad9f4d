import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class CommsConfig(AppConfig):
    name = "comms"
    verbose_name = "Messages"  # breadcrumbs: Messages > Deliveries

    def ready(self) -> None:
        # The tasks the engine publishes by name (``common.jobs.publish``) are registered
        # with the Celery app in every process, not only where a module imported them.
        from comms import tasks  # noqa: F401

        checks.register(public_base_url_check, checks.Tags.security, deploy=True)


def public_base_url_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """``check --deploy``: HERALD_PUBLIC_BASE_URL left at its default (or any loopback or
    plain-HTTP address) puts unsubscribe links in real emails that recipients cannot open,
    or open unencrypted; nothing else would say so until a recipient complains. A deploy
    check rather than an always-on one: DEBUG is off by default, so the checkout's own
    ``make run`` would warn on every command."""
    if settings.DEBUG:
        return []
    url = settings.HERALD_PUBLIC_BASE_URL
    parts = urlsplit(url)
    problems = [] if parts.scheme == "https" else ["not https"]
    if _local_host(parts.hostname):
        problems.append("a loopback address recipients cannot reach")
    if not problems:
        return []
    return [checks.Warning(
        f"HERALD_PUBLIC_BASE_URL is {url!r}: {' and '.join(problems)}.",
        hint="Set it to the https:// address recipients reach this server at (such as "
             "https://herald.example.com): the unsubscribe and preferences links in emails "
             "are made from it.", id="comms.W001")]


def _local_host(host: str | None) -> bool:
    """No host, ``localhost`` (and its subdomains), or a loopback or unspecified IP."""
    if not host:
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
