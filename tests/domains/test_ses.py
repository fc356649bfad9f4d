"""Sender domains on Amazon SES: the whole flow against moto's server (which issues no DKIM
tokens), and the token path with recorded SES answers through botocore's Stubber."""

import urllib.request

import boto3
import pytest
from botocore.stub import Stubber

from domains.providers.base import (
    DomainNotFoundAtProvider,
    DomainProviderConfigurationError,
    DomainProviderError,
)
from domains.providers.ses import NO_TOKENS, SesDomains
from domains.selectors import sender_for
from tests.fakes.dns_server import local_dns_fixture, local_dns_server_fixture  # noqa: F401

URL = "/comms/v1/api/comms/domain"
REGION = "us-east-1"
TOKENS = ["ptzrtc3mhrv2ynqrpgqpqsmkfkhaifql", "iz2cemoq6jq5egwytuwmhsnbz2bq4rpv",
          "u5dwxegqapbagfrrk4p7vnbyetrh6gro"]
pytestmark = pytest.mark.usefixtures("local_dns")



@pytest.fixture
def ses(settings, moto_url) -> object:
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"))
    settings.HERALD_EMAIL_PROVIDER = "ses"
    settings.HERALD_DOMAIN_PROVIDER = ""
    settings.HERALD_SES_REGION = REGION
    settings.HERALD_SES_ENDPOINT_URL = moto_url
    return boto3.client("sesv2", region_name=REGION, endpoint_url=moto_url)


def test_the_flow_on_moto(api, other_api, ses):
    created = api.post(URL, {"domain": "Mail.Example.com"})

    assert created.status_code == 200, created.content
    body = created.json()
    assert body["domain"] == "mail.example.com" and isinstance(body["id"], int)
    assert body["verified"] is False and body["enabled"] is False
    assert body["dnsRecords"] == []  # moto issues no DKIM tokens
    assert ses.get_email_identity(EmailIdentity="mail.example.com")["IdentityType"] == "DOMAIN"

    assert other_api.post(URL, {"domain": "mail.example.com"}).status_code == 409

    validated = api.post(f"{URL}/validate").json()  # moto reports the identity verified
    assert validated["verified"] is True and validated["enabled"] is True
    assert sender_for(account_id=api.keys.account.id) == ("tickets@mail.example.com",
                                                          "Acme Events")
    _send_and_check_source(api, "tickets@mail.example.com")

    assert api.client.delete(URL).status_code == 204
    with pytest.raises(ses.exceptions.NotFoundException):
        ses.get_email_identity(EmailIdentity="mail.example.com")
    assert api.get(URL).status_code == 404


def _send_and_check_source(api, address: str) -> None:
    """The next ticket goes out through SES (moto) from the verified domain."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    from tests.conftest import TICKET, guest

    event = api.post("/checkin/v1/api/event", {"name": "Gala"}).json()["id"]
    template = api.post("/comms/v1/api/comms/template", TICKET).json()["id"]
    assert api.post("/checkin/v1/api/guest", guest(event, template)).status_code == 200
    message = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages[-1]
    assert address in message.source


def test_an_unreachable_ses_is_502_and_nothing_is_stored(api, ses, settings):
    settings.HERALD_SES_ENDPOINT_URL = "http://127.0.0.1:9"
    response = api.post(URL, {"domain": "mail.example.com"})
    assert response.status_code == 502
    assert response.json()["provider"] == "ses"
    assert api.get(URL).status_code == 404


# --- the token path, with SES's recorded answers ------------------------------------------------

def stubbed() -> tuple[SesDomains, Stubber]:
    client = boto3.client("sesv2", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="y")
    return SesDomains(client), Stubber(client)


CREATED = {  # create_email_identity for a domain, as SES answers it
    "IdentityType": "DOMAIN", "VerifiedForSendingStatus": False,
    "DkimAttributes": {"SigningEnabled": True, "Status": "PENDING", "Tokens": TOKENS,
                       "SigningAttributesOrigin": "AWS_SES",
                       "NextSigningKeyLength": "RSA_2048_BIT",
                       "CurrentSigningKeyLength": "RSA_2048_BIT"},
}


def identity(status: str, verified: bool) -> dict:
    return {
        "IdentityType": "DOMAIN", "FeedbackForwardingStatus": True,
        "VerifiedForSendingStatus": verified, "VerificationStatus": status,
        "DkimAttributes": {**CREATED["DkimAttributes"], "Status": status}, "Policies": {},
        "Tags": [],
    }


def test_dkim_tokens_become_three_cnames():
    adapter, stub = stubbed()
    stub.add_response("create_email_identity", CREATED, {"EmailIdentity": "mail.example.com"})
    with stub:
        auth = adapter.create("mail.example.com")

    assert auth.provider_id == "mail.example.com" and auth.valid is False and auth.note == ""
    assert [r.as_json() for r in auth.records] == [
        {"type": "cname", "host": f"{t}._domainkey.mail.example.com",
         "data": f"{t}.dkim.amazonses.com", "valid": False} for t in TOKENS]


def test_validation_reads_the_identity_status():
    adapter, stub = stubbed()
    params = {"EmailIdentity": "mail.example.com"}
    stub.add_response("get_email_identity", identity("PENDING", False), params)
    stub.add_response("get_email_identity", identity("FAILED", False), params)
    stub.add_response("get_email_identity", identity("SUCCESS", True), params)
    with stub:
        pending = adapter.validate("mail.example.com")
        failed = adapter.validate("mail.example.com")
        success = adapter.validate("mail.example.com")

    assert not pending.valid and not any(r.valid for r in pending.records)
    assert not failed.valid and set(failed.reasons.values()) == {"SES DKIM status FAILED"}
    assert success.valid and all(r.valid for r in success.records) and len(success.records) == 3


def test_no_tokens_yet_gives_no_records_and_says_so():
    adapter, stub = stubbed()
    answer = {**CREATED, "DkimAttributes": {"SigningEnabled": False, "Status": "NOT_STARTED"}}
    stub.add_response("create_email_identity", answer, {"EmailIdentity": "mail.example.com"})
    with stub:
        auth = adapter.create("mail.example.com")
    assert auth.records == [] and auth.note == NO_TOKENS


def test_an_existing_identity_is_adopted():
    adapter, stub = stubbed()
    params = {"EmailIdentity": "mail.example.com"}
    stub.add_client_error("create_email_identity", "AlreadyExistsException",
                          "Email identity mail.example.com already exist.", 400,
                          expected_params=params)
    stub.add_response("get_email_identity", identity("SUCCESS", True), params)
    with stub:
        auth = adapter.create("mail.example.com")
    assert auth.valid and len(auth.records) == 3


@pytest.mark.parametrize(("code", "error"), [
    ("NotFoundException", DomainNotFoundAtProvider),
    ("AccessDeniedException", DomainProviderConfigurationError),
    ("TooManyRequestsException", DomainProviderError),
    ("BadRequestException", DomainProviderError),
])
def test_ses_errors_are_classified(code, error):
    adapter, stub = stubbed()
    stub.add_client_error("get_email_identity", code, f"{code} says no", 400)
    with stub, pytest.raises(error) as raised:
        adapter.get("mail.example.com")
    assert str(raised.value) == f"SES 400 {code}"  # the message: server log only
