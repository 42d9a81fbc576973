import logging

import pytest

from workshop_hub.access.exposure import attendee_origin_host, log_exposure
from workshop_hub.settings import SettingsError, load_settings


def logged(caplog, settings: dict[str, str], compose: dict[str, str]) -> list[tuple[int, str]]:
    """What the hub logs at start for these settings (.env) and compose facts."""
    log = logging.getLogger("test-exposure")
    with caplog.at_level(logging.INFO, logger=log.name):
        log_exposure(log, load_settings(settings), compose)
    return [(record.levelno, record.getMessage()) for record in caplog.records]


def test_default_is_plain_http_on_loopback_and_says_how_to_turn_on_https(caplog):
    [(level, message)] = logged(caplog, {}, {})
    assert level == logging.INFO
    assert message.startswith("serving plain HTTP on 127.0.0.1:8000 only (this host)")
    assert "WORKSHOP_DOMAIN" in message and "COMPOSE_PROFILES=https" in message


def test_host_port_comes_from_compose(caplog):
    [(_, message)] = logged(caplog, {}, {"WORKSHOP_PORT": "8123"})
    assert "127.0.0.1:8123" in message


@pytest.mark.parametrize("address, shown", [("0.0.0.0", "0.0.0.0:8000"), ("::", "[::]:8000")])
def test_an_open_plain_port_warns_that_codes_travel_in_clear_text(caplog, address, shown):
    [(info, summary), (warning, text)] = logged(caplog, {"WORKSHOP_LISTEN_ADDRESS": address}, {})
    assert (info, warning) == (logging.INFO, logging.WARNING)
    assert summary == f"serving plain HTTP on {shown} only"
    assert f"plain HTTP on {shown} is open to the network" in text
    assert "clear text" in text and "WORKSHOP_LISTEN_ADDRESS=127.0.0.1" in text
    assert "WORKSHOP_DOMAIN" in text


def test_a_domain_means_https_through_the_proxy(caplog):
    [(level, message)] = logged(caplog, {"WORKSHOP_DOMAIN": "hub.example.org"}, {})
    assert level == logging.INFO
    assert message.startswith("serving HTTPS for hub.example.org through the proxy")
    assert "certificate from ACME" in message
    assert message.endswith("plain HTTP on 127.0.0.1:8000 for this host")


def test_the_organizers_certificate_is_named(caplog):
    [(_, message)] = logged(caplog, {}, {"WORKSHOP_TLS_CERT": "/etc/venue/hub.pem"})
    assert message.startswith("serving HTTPS through the proxy")
    assert "certificate from WORKSHOP_TLS_CERT" in message


def test_https_with_an_open_plain_port_still_warns(caplog):
    settings = {"WORKSHOP_DOMAIN": "hub.example.org", "WORKSHOP_LISTEN_ADDRESS": "192.0.2.10"}
    [(_, summary), (level, warning)] = logged(caplog, settings, {})
    assert summary.startswith("serving HTTPS for hub.example.org")
    assert level == logging.WARNING
    assert warning.endswith("clear text; set WORKSHOP_LISTEN_ADDRESS=127.0.0.1")


def origin_host(settings: dict[str, str], compose: dict[str, str]) -> str:
    return attendee_origin_host(load_settings(settings, env_file=None), compose)


def test_attendees_share_the_hubs_origin_unless_asked():
    assert origin_host({}, {"WORKSHOP_PORT": "8123"}) == ""


@pytest.mark.parametrize(
    "settings, compose, expected",
    [
        ({}, {"WORKSHOP_PORT": "8123"}, "http://localhost:8123"),
        (
            {"WORKSHOP_DOMAIN": "hub.example.org"},
            {"WORKSHOP_TLS_CERT": "/etc/wildcard.pem"},
            "https://hub.example.org",
        ),
        (
            {"WORKSHOP_DOMAIN": "hub.example.org"},
            {"WORKSHOP_TLS_CERT": "/etc/wildcard.pem", "WORKSHOP_HTTPS_PORT": "8443"},
            "https://hub.example.org:8443",
        ),
    ],
)
def test_an_origin_per_attendee_on_this_host_or_under_the_organizers_wildcard(
    settings, compose, expected
):
    assert origin_host({**settings, "WORKSHOP_ORIGIN_PER_ATTENDEE": "true"}, compose) == expected


@pytest.mark.parametrize(
    "settings, compose",
    [
        ({"WORKSHOP_DOMAIN": "hub.example.org"}, {}),  # ACME: no wildcard certificate here
        ({}, {"WORKSHOP_TLS_CERT": "/etc/wildcard.pem"}),  # no name to put attendees under
    ],
)
def test_an_origin_per_attendee_over_https_needs_a_domain_and_a_wildcard_certificate(
    settings, compose
):
    with pytest.raises(SettingsError, match="wildcard certificate"):
        origin_host({**settings, "WORKSHOP_ORIGIN_PER_ATTENDEE": "true"}, compose)
