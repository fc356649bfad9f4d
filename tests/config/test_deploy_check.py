"""`manage.py check --deploy` is clean in a production environment (issue 15, item 12): HTTPS
cookies, HSTS, the redirect and the proxy's header come from the environment (README)."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "herald.example.com",
    "DJANGO_HTTPS": "true",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "DATABASE_URL": "postgres://herald@db.internal:5432/herald",
    "CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "HERALD_PUBLIC_BASE_URL": "https://herald.example.com",
}


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    # A DATABASE_URL that is never connected to: without one the settings would start the
    # checkout's embedded server (var/pg) and leave it running after the tests.
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
             "HOME": os.environ.get("HOME", "/tmp"),
             "DJANGO_SETTINGS_MODULE": "config.settings",
             "DATABASE_URL": PRODUCTION["DATABASE_URL"], **env}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=clean, capture_output=True,
                          text=True, timeout=120)


def test_check_deploy_is_clean_in_production():
    result = _run("manage.py", "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def _setting(name: str, **env: str) -> str:
    return _run("-c", f"from django.conf import settings; print(repr(settings.{name}))",
                **env).stdout.strip()


def test_https_settings_come_from_the_environment():
    https = {**PRODUCTION, "DJANGO_SECURE_HSTS_SECONDS": "600",
             "DJANGO_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Scheme: on"}
    assert _setting("SECURE_HSTS_SECONDS", **https) == "600"
    assert _setting("SECURE_PROXY_SSL_HEADER", **https) == "('HTTP_X_FORWARDED_SCHEME', 'on')"
    assert _setting("SESSION_COOKIE_SECURE", **https) == "True"
    assert _setting("CSRF_COOKIE_SECURE", **https) == "True"
    assert _setting("SECURE_SSL_REDIRECT", **https, DJANGO_SECURE_SSL_REDIRECT="false") == "False"


def test_zero_setup_stays_plain_http_and_the_check_says_so():
    assert _setting("SECURE_SSL_REDIRECT") == "False"
    assert _setting("SECURE_PROXY_SSL_HEADER") == "None"
    plain = {k: v for k, v in PRODUCTION.items() if not k.startswith("DJANGO_SECURE")}
    plain.pop("DJANGO_HTTPS")
    result = _run("manage.py", "check", "--deploy", **plain)
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stdout + result.stderr


def test_trusted_proxies_are_checked_when_the_settings_load():
    assert _setting("HERALD_TRUSTED_PROXIES",
                    HERALD_TRUSTED_PROXIES="10.0.0.7/8, ::1") == "['10.0.0.0/8', '::1/128']"
    bad = _run("-c", "from django.conf import settings; settings.HERALD_TRUSTED_PROXIES",
               HERALD_TRUSTED_PROXIES="10.0.0.0/8,proxy.local")
    assert bad.returncode != 0 and "proxy.local" in bad.stderr
