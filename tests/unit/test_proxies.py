"""Whose X-Forwarded-For is believed: only that of the peers in FORWARDED_ALLOW_IPS, none by default."""

from __future__ import annotations

import pytest

from intake.proxies import TrustedProxies
from intake.settings import load_settings


def test_no_proxy_is_trusted_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    trusted = TrustedProxies(load_settings().intake.trusted_proxies)
    assert not trusted
    assert trusted.client("127.0.0.1", "198.51.100.7") == "127.0.0.1"


def test_the_setting_lists_addresses_and_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1, 10.0.0.0/8,::1")
    assert load_settings().intake.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "::1")


def test_a_bad_entry_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.1,proxy.internal")
    with pytest.raises(ValueError, match="FORWARDED_ALLOW_IPS"):
        load_settings()


def test_a_trusted_peer_names_the_nearest_untrusted_hop() -> None:
    trusted = TrustedProxies(("127.0.0.1", "10.0.0.0/8"))
    # client, then a proxy of ours that appended what it saw
    assert trusted.client("127.0.0.1", "203.0.113.9, 10.1.2.3") == "203.0.113.9"
    # a client that sends its own X-Forwarded-For cannot pick its address: the proxy appends the real one
    assert trusted.client("127.0.0.1", "198.51.100.1, 203.0.113.9") == "203.0.113.9"
    assert trusted.client("127.0.0.1", "10.0.0.1") == "10.0.0.1"
    assert trusted.client("127.0.0.1", None) == "127.0.0.1"
    assert trusted.client("192.0.2.1", "203.0.113.9") == "192.0.2.1"


def test_a_star_trusts_every_peer() -> None:
    assert TrustedProxies(("*",)).client("192.0.2.1", "203.0.113.9") == "203.0.113.9"
