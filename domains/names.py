"""Domain names as callers type them, turned into the one form Herald stores and checks.

Pure functions: no Django, no network.
"""

import ipaddress
import re

import idna

MAX_NAME = 253
MAX_LABEL = 63
_LDH = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")


class InvalidDomain(ValueError):
    """The text is not a domain Herald can authenticate; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def domain_normalize(raw: str) -> str:
    """``raw`` as lowercase ASCII (IDNs as A-labels, ``xn--…``) without a trailing dot.

    Refuses what no provider can authenticate: IP addresses, bare TLDs, URLs and e-mail
    addresses, wildcards, labels over 63 characters, names over 253.
    """
    text = raw.strip().lower()
    text = text[:-1] if text.endswith(".") else text  # the root's dot of an FQDN
    if not text:
        raise InvalidDomain("invalid_domain", "Give a domain name, e.g. mail.example.com.")
    _refuse_ip(text)
    if any(ch in text for ch in "/:@ *?#\\\t\r\n") or ".." in text:
        raise InvalidDomain("invalid_domain", f"{raw.strip()!r} is not a domain name: give "
                            "only the name, e.g. mail.example.com (no scheme, path or @).")
    name = _to_ascii(text)
    _check_labels(name)
    return name


def _refuse_ip(text: str) -> None:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return
    raise InvalidDomain("ip_address_not_allowed",
                        "An IP address cannot be authenticated: give a domain name.")


def _to_ascii(text: str) -> str:
    if text.isascii():
        for label in text.split("."):
            if label.startswith("xn--"):
                _check_a_label(label)
        return text
    try:
        return idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidDomain("invalid_domain",
                            f"{text!r} is not a valid internationalized domain name: {exc}"
                            ) from None


def _check_a_label(label: str) -> None:
    try:
        idna.decode(label)
    except idna.IDNAError:
        raise InvalidDomain("invalid_domain", f"{label!r} is not a valid IDN label.") from None


def _check_labels(name: str) -> None:
    labels = name.split(".")
    if len(labels) < 2:
        raise InvalidDomain("bare_tld_not_allowed", f"{name!r} is a top-level domain alone: "
                            "give a domain you own, e.g. mail.example.com.")
    if len(name) > MAX_NAME:
        raise InvalidDomain("domain_too_long",
                            f"A domain name has at most {MAX_NAME} characters.")
    for label in labels:
        if len(label) > MAX_LABEL:
            raise InvalidDomain("label_too_long", f"The label {label[:20]!r}… has {len(label)} "
                                f"characters; a label has at most {MAX_LABEL}.")
        if not _LDH.match(label):
            raise InvalidDomain("invalid_domain", f"The label {label!r} may only hold letters, "
                                "digits and inner hyphens.")
    if not _TLD.match(labels[-1]):
        raise InvalidDomain("invalid_domain", f"{labels[-1]!r} is not a top-level domain.")


def email_domain(address: str) -> str:
    """The normalized domain of an e-mail address ('' if it has none)."""
    _, at, domain = address.strip().rpartition("@")
    if not at:
        return ""
    try:
        return domain_normalize(domain)
    except InvalidDomain:
        return ""
