import json

from django.core.management import call_command

from accounts.models import ApiKey


def test_createaccount_prints_keys_once_and_stores_them_hashed(db, capsys):
    call_command("createaccount", "Acme", "--json")
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"accountId", "liveKey", "testKey", "adminKey", "subscriptionKey"}
    assert data["liveKey"].startswith("live_") and data["testKey"].startswith("test_")
    stored = ApiKey.objects.filter(account_id=data["accountId"])
    assert stored.count() == 3
    for key in stored:
        assert key.key_hash not in (data["liveKey"], data["testKey"], data["adminKey"])
        assert len(key.key_hash) == 64
    assert stored.get(is_admin=True).mode == "live"


def test_revoked_key_is_401(api, keys):
    from django.utils import timezone

    ApiKey.objects.filter(mode="live", is_admin=False).update(revoked_at=timezone.now())
    assert api.get("/checkin/v1/api/event").status_code == 401


def test_key_lookups_are_cached_for_the_configured_seconds(api, keys, settings):
    from api import authentication

    settings.HERALD_API_KEY_CACHE_SECONDS = 60
    authentication._cache.clear()
    assert api.get("/checkin/v1/api/event").status_code == 200
    ApiKey.objects.filter(mode="live", is_admin=False).update(revoked_at="2026-01-01T00:00Z")
    assert api.get("/checkin/v1/api/event").status_code == 200  # within the cache window
    authentication._cache.clear()  # what the window's end does
    assert api.get("/checkin/v1/api/event").status_code == 401
