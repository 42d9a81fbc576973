"""With HTTPS on: the domain's DNS, the organizer's own certificate (key, dates, names), or
the ports ACME needs. Pure functions of the settings and the facts."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ...settings import WorkshopSettings
from .facts import FAIL, FREE, OURS, PASS, WARN, HostFacts, Verdict

# A certificate closer to its end than this is renewed before the day, not during it.
CERTIFICATE_WARN_DAYS = 14


def check_domain(settings: WorkshopSettings, facts: HostFacts) -> Verdict | None:
    """HTTPS for WORKSHOP_DOMAIN needs the name to lead attendees (and ACME) to this host."""
    if not settings.domain:
        return None
    name = settings.domain
    if facts.domain_error is not None or not facts.domain_addresses:
        return Verdict(
            "domain",
            FAIL,
            f"{name} does not resolve ({facts.domain_error or 'no address'})",
            f"create a DNS record (A/AAAA) for {name} with this host's public address, or for "
            f"a room without DNS fix WORKSHOP_DOMAIN; check with `getent hosts {name}`",
        )
    found = ", ".join(facts.domain_addresses)
    ours = [address for address in facts.domain_addresses if address in facts.host_addresses]
    if ours:
        return Verdict("domain", PASS, f"{name} resolves to {found} ({', '.join(ours)} is here)")
    return Verdict(
        "domain",
        WARN,
        f"{name} resolves to {found}, none of them an address of this host "
        f"({', '.join(sorted(facts.host_addresses)) or 'none found'})",
        "fine when this host is behind NAT or a router that forwards ports 80 and 443 to it "
        "(the preflight cannot see a public address from here); otherwise point the DNS "
        f"record for {name} at this host",
    )


def _public_key_der(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _names(certificate: x509.Certificate) -> list[str]:
    """The DNS names a certificate is valid for: its SANs, else its common name."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        return extension.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        common = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return [str(attribute.value) for attribute in common]


def certificate_covers(names: list[str], domain: str) -> bool:
    """Whether `domain` is among `names`, a wildcard standing for exactly one label."""
    domain = domain.lower().rstrip(".")
    for name in (name.lower().rstrip(".") for name in names):
        if name == domain:
            return True
        if name.startswith("*.") and domain.partition(".")[2] == name[2:] and "." in name[2:]:
            return True
    return False


def check_certificate(
    settings: WorkshopSettings, facts: HostFacts, now: datetime.datetime
) -> list[Verdict]:
    """The organizer's own certificate (WORKSHOP_TLS_CERT): readable, matching its key, in
    date, and naming the domain. The proxy serves it as it is, with no renewal."""
    tls = facts.tls
    if tls is None:
        return []
    fix_files = "fix WORKSHOP_TLS_CERT / WORKSHOP_TLS_KEY in .env (absolute paths on this host)"
    for setting, path, error in (
        ("WORKSHOP_TLS_CERT", tls.cert_path, tls.cert_error),
        ("WORKSHOP_TLS_KEY", tls.key_path, tls.key_error),
    ):
        if error is not None:
            return [Verdict("certificate files", FAIL, f"{setting}={path}: {error}", fix_files)]
    try:
        chain = x509.load_pem_x509_certificates(tls.cert)
    except ValueError as error:
        return [
            Verdict(
                "certificate files",
                FAIL,
                f"{tls.cert_path} is not a PEM certificate ({error})",
                "give the certificate (with its chain) in PEM, as your CA sent it; " + fix_files,
            )
        ]
    try:
        key = serialization.load_pem_private_key(tls.key, password=None)
    except (ValueError, TypeError) as error:
        return [
            Verdict(
                "certificate files",
                FAIL,
                f"{tls.key_path} is not an unencrypted PEM private key ({error})",
                "give the key in PEM without a passphrase "
                "(`openssl pkey -in KEY -out key.pem` removes it); " + fix_files,
            )
        ]
    certificate = chain[0]
    verdicts = [Verdict("certificate files", PASS, f"{tls.cert_path} and {tls.key_path} read")]
    if _public_key_der(certificate.public_key()) == _public_key_der(key.public_key()):
        verdicts.append(Verdict("certificate and key", PASS, "the key is the certificate's"))
    else:
        verdicts.append(
            Verdict(
                "certificate and key",
                FAIL,
                f"{tls.key_path} is not the key of {tls.cert_path}",
                "give the key that was made with this certificate's request; " + fix_files,
            )
        )
    verdicts.append(_certificate_dates(certificate, now))
    names = _names(certificate)
    if settings.domain and not certificate_covers(names, settings.domain):
        verdicts.append(
            Verdict(
                "certificate names",
                FAIL,
                f"the certificate is for {', '.join(names) or 'no name'}, "
                f"not WORKSHOP_DOMAIN={settings.domain}",
                f"get a certificate for {settings.domain} (or a wildcard over its domain), or "
                "fix WORKSHOP_DOMAIN",
            )
        )
    elif settings.domain:
        verdicts.append(
            Verdict("certificate names", PASS, f"{settings.domain} is among {', '.join(names)}")
        )
    return verdicts


def _certificate_dates(certificate: x509.Certificate, now: datetime.datetime) -> Verdict:
    starts, ends = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    days_left = (ends - now).days
    until = f"valid until {ends:%Y-%m-%d %H:%M} UTC"
    renew = "renew it with your CA and replace the files named by WORKSHOP_TLS_CERT / _KEY"
    if now < starts:
        return Verdict(
            "certificate dates",
            FAIL,
            f"not valid before {starts:%Y-%m-%d %H:%M} UTC",
            "check this host's clock, or use a certificate valid now",
        )
    if now >= ends:
        return Verdict("certificate dates", FAIL, f"expired: was {until}", renew)
    if days_left < CERTIFICATE_WARN_DAYS:
        return Verdict(
            "certificate dates", WARN, f"{until}: {days_left} days left", renew + " before the day"
        )
    return Verdict("certificate dates", PASS, f"{until} ({days_left} days left)")


def check_acme_ports(settings: WorkshopSettings, facts: HostFacts) -> Verdict | None:
    """ACME (Let's Encrypt) proves the domain through the proxy's ports 80 and 443."""
    if not facts.acme_port_holders:
        return None
    taken = {
        port: holder
        for port, holder in facts.acme_port_holders.items()
        if holder not in (FREE, OURS)
    }
    ports = " and ".join(facts.acme_port_holders)
    if not taken:
        return Verdict("ports for ACME", PASS, f"{ports} free or the proxy's own")
    return Verdict(
        "ports for ACME",
        FAIL,
        "; ".join(f"port {port} is taken by {holder}" for port, holder in taken.items()),
        "the certificate authority reaches the proxy on these ports (HTTP-01 on 80, "
        "TLS-ALPN-01 on 443): stop what holds them, or give your own certificate "
        "(WORKSHOP_TLS_CERT and WORKSHOP_TLS_KEY)",
    )
