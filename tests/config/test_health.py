"""/healthz and /readyz (issue #20, Operations 2): the process answers without the database;
readiness names the database, the broker and the migrations, 503 naming what failed — a
broker that refuses, a database that is not there (another process: this one's connections
cannot be pointed elsewhere), a migration recorded as unapplied — and never a secret."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

from config import health
from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
READY = {"status": "ok", "checks": {"database": "ok", "broker": "ok", "migrations": "ok"}}


def test_healthz_answers_without_the_database_from_any_host():
    """No ``db`` fixture: a database query here would fail the test. A probe comes by the
    instance's address, which ALLOWED_HOSTS does not list, over plain HTTP."""
    response = Client(HTTP_HOST="10.1.2.3:8000").get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["X-Request-Id"].startswith("req-")
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db(transaction=True)
def test_readyz_is_200_when_database_broker_and_migrations_are_ready():
    started = time.monotonic()
    response = Client(HTTP_HOST="10.1.2.3").get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == READY
    assert time.monotonic() - started < 2.5


def test_probes_take_no_authentication_and_refuse_writes():
    client = Client()
    assert client.post("/readyz").status_code == 405
    assert client.get("/healthz", HTTP_AUTHORIZATION="Bearer nonsense").status_code == 200


@pytest.fixture
def broken_broker(monkeypatch):
    """The broker's URL (with a password in it) pointing at a closed port (Celery reads
    CELERY_BROKER_URL from the environment first)."""
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://:broker-pw-Zq81@127.0.0.1:1/0")
    assert celery_app.conf.broker_url.endswith("@127.0.0.1:1/0")
    return "broker-pw-Zq81"


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_refuses_is_a_503_naming_it_without_its_url(broken_broker):
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok" and body["checks"]["migrations"] == "ok"
    assert body["checks"]["broker"] == "failed (OperationalError)"
    assert broken_broker not in response.content.decode()
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_an_unapplied_migration_is_a_503_and_applied_ones_are_read_once():
    """A migration recorded as not applied (its row taken out of django_migrations, for real,
    then put back): not ready. Once found migrated, a process does not read the plan again."""
    health._migrated.clear()
    assert Client().get("/readyz").status_code == 200
    latest = MigrationRecorder.Migration.objects.filter(app="comms").order_by("-id").first()
    latest.delete()
    try:
        assert Client().get("/readyz").json()["checks"]["migrations"] == "ok"  # read once
        health._migrated.clear()  # a new process
        response = Client().get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {"database": "ok", "broker": "ok",
                                              "migrations": "unapplied (1 migration)"}
    finally:
        MigrationRecorder.Migration.objects.create(app=latest.app, name=latest.name,
                                                   applied=latest.applied)
        health._migrated.clear()
    assert Client().get("/readyz").json() == READY


PROBE = """
import django, json, time
django.setup()
from django.test import Client
started = time.monotonic()
response = Client().get("/readyz")
print(json.dumps({"status": response.status_code, "body": response.json(),
                  "seconds": time.monotonic() - started}))
"""


def test_a_database_that_is_not_there_is_a_503_within_the_deadline():
    """Another process whose DATABASE_URL (with a password) names a closed port: its pool
    would wait 10 s for a connection; the probe answers in about 2 s, the database (and the
    migrations, which need it) not ready."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "DATABASE_URL": "postgres://herald:db-pw-Xk42@127.0.0.1:1/herald",
           "LOG_LEVEL": "CRITICAL"}
    run = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60)
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503
    assert answer["body"]["status"] == "unavailable"
    checks = answer["body"]["checks"]
    assert checks["database"] in ("timeout", "failed (OperationalError)")
    assert checks["migrations"] in ("timeout", "failed (OperationalError)")
    assert checks["broker"] == "ok"
    assert answer["seconds"] < 3
    assert "db-pw-Xk42" not in run.stdout + run.stderr
