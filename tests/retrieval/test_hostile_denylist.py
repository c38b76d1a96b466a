"""Kind 13 of issue 15: the deny-list is complete. One test per special-purpose range (an address inside, refused;
the public neighbour just outside, allowed), and a real name that resolves into a range is refused at connect time."""

from __future__ import annotations

import ipaddress

import pytest

from retrieval import BlockedURLError
from retrieval.addresses import SPECIAL_NETWORKS, ip_is_forbidden
from tests.retrieval.conftest import fetch_one

# range -> (an address inside it, a public address just outside it; None where the neighbour is itself special)
CASES = {
    "0.0.0.0/8": ("0.1.2.3", "1.0.0.1"),
    "10.0.0.0/8": ("10.255.0.1", "11.0.0.1"),
    "100.64.0.0/10": ("100.100.100.100", "100.128.0.1"),
    "127.0.0.0/8": ("127.255.255.254", "128.0.0.1"),
    "169.254.0.0/16": ("169.254.169.254", "169.255.0.1"),
    "172.16.0.0/12": ("172.31.255.1", "172.32.0.1"),
    "192.0.0.0/24": ("192.0.0.9", "192.0.1.1"),
    "192.0.2.0/24": ("192.0.2.10", "192.0.3.1"),
    "192.88.99.0/24": ("192.88.99.1", "192.88.100.1"),
    "192.168.0.0/16": ("192.168.1.1", "192.169.0.1"),
    "198.18.0.0/15": ("198.19.255.1", "198.20.0.1"),
    "198.51.100.0/24": ("198.51.100.7", "198.51.101.1"),
    "203.0.113.0/24": ("203.0.113.9", "203.0.114.1"),
    "224.0.0.0/4": ("239.255.255.250", "223.255.255.1"),
    "240.0.0.0/4": ("250.1.2.3", None),
    "255.255.255.255/32": ("255.255.255.255", None),
    "::/128": ("::", None),
    "::1/128": ("::1", None),
    "::/96": ("::7f00:1", None),
    "64:ff9b:1::/48": ("64:ff9b:1::1", None),
    "100::/64": ("100::1", None),
    "2001::/23": ("2001::1", "2001:4860:4860::8888"),
    "2001:db8::/32": ("2001:db8::1", "2001:4860:4860::8844"),
    "3fff::/20": ("3fff::1", "2a00:1450:4001::1"),
    "5f00::/16": ("5f00::1", None),
    "fc00::/7": ("fd12:3456::1", None),
    "fe80::/10": ("fe80::1", None),
    "fec0::/10": ("fec0::1", "2606:4700:4700::1111"),
    "ff00::/8": ("ff02::1", None),
}


def test_every_listed_range_has_a_case():
    assert set(CASES) == set(SPECIAL_NETWORKS)


@pytest.mark.parametrize("network", sorted(CASES))
def test_range_is_refused_and_its_public_neighbour_is_not(network, tmp_data_dir):
    inside, outside = CASES[network]
    assert ip_is_forbidden(ipaddress.ip_address(inside)), inside
    if outside is not None:
        assert not ip_is_forbidden(ipaddress.ip_address(outside)), outside
    host = f"[{inside}]" if ":" in inside else inside
    with pytest.raises(BlockedURLError, match="non-public address"):
        fetch_one(_settings(), f"http://{host}/")


@pytest.mark.parametrize("address", ["::ffff:192.0.0.8", "2002:c000:0008::1", "64:ff9b::a00:1", "64:ff9b::7f00:1",
                                     "2001:0:4136:e378:8000:63bf:3fff:fdd2"])
def test_addresses_embedding_a_forbidden_ipv4_are_refused(address):
    assert ip_is_forbidden(ipaddress.ip_address(address))


def test_nat64_of_a_public_address_is_allowed():
    assert not ip_is_forbidden(ipaddress.ip_address("64:ff9b::808:808"))  # 8.8.8.8 through NAT64


def test_a_name_resolving_into_a_range_is_refused_at_connect_time(tmp_data_dir, monkeypatch):
    """DNS answers fec0::1 and 192.0.0.8 for a public-looking name: the guard checks the resolved addresses. The
    resolver is the one faked part (no test can own a public DNS name)."""
    import asyncio
    import socket

    answers = {"site-local.test": "fec0::1", "ietf.test": "192.0.0.8"}
    real = asyncio.BaseEventLoop.getaddrinfo

    async def fake_getaddrinfo(self, host, port, *a, **kw):
        if host in answers:
            ip = answers[host]
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (ip, port))]
        return await real(self, host, port, *a, **kw)

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", fake_getaddrinfo)
    for name, ip in answers.items():
        with pytest.raises(BlockedURLError, match=f"resolves to a non-public address \\({ip}\\)"):
            fetch_one(_settings(), f"http://{name}/")


def _settings():
    from retrieval import RetrievalSettings

    return RetrievalSettings(fetch_cache=False, fetch_timeout_connect_s=2.0, fetch_timeout_total_s=5.0,
                             fetch_retries=0)
