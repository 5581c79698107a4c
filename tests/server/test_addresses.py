"""Addresses and networks as sortable keys (server.addresses)."""

from __future__ import annotations

import ipaddress

import pytest

from server.addresses import (
    AddressError,
    address_key,
    network_range,
    network_text,
    parse_address,
    parse_network,
)


def test_an_ipv4_address_and_its_mapped_ipv6_form_share_a_key() -> None:
    assert address_key("192.0.2.7") == address_key("::ffff:192.0.2.7") == "00000000000000000000ffffc0000207"
    assert str(parse_address(" ::ffff:192.0.2.7 ")) == "192.0.2.7"


def test_keys_sort_as_the_addresses_do() -> None:
    texts = ["10.0.0.2", "10.0.0.10", "192.0.2.1", "::1", "2001:db8::1", "2001:db8::ff", "fe80::1"]
    by_key = sorted(texts, key=address_key)
    by_value = sorted(texts, key=lambda t: int(ipaddress.IPv6Address(f"::ffff:{t}" if "." in t else t)))
    assert by_key == by_value


@pytest.mark.parametrize(("text", "shown", "inside", "outside"), [
    ("192.0.2.7/24", "192.0.2.0/24", ["192.0.2.0", "192.0.2.255", "::ffff:192.0.2.9"],
     ["192.0.3.0", "192.0.1.255"]),
    ("10.0.0.1", "10.0.0.1/32", ["10.0.0.1"], ["10.0.0.2", "10.0.0.0"]),
    ("::ffff:198.51.100.0/120", "198.51.100.0/24", ["198.51.100.77"], ["198.51.101.0"]),
    ("2001:db8::/32", "2001:db8::/32", ["2001:db8::1", "2001:db8:ffff::"], ["2001:db9::", "192.0.2.1"]),
])
def test_a_network_is_the_key_range_of_its_addresses(text: str, shown: str, inside: list[str],
                                                       outside: list[str]) -> None:
    network = parse_network(text)
    assert network_text(network) == shown
    first, last = network_range(network)
    for address in inside:
        assert first <= address_key(address) <= last, address
    for address in outside:
        assert not first <= address_key(address) <= last, address


@pytest.mark.parametrize("text", ["", "example.com", "300.1.1.1", "10.0.0.0/33", "fe80::1%eth0", "1.2.3",
                                  "::g"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(AddressError):
        if "/" in text or not text:
            parse_network(text)
        else:
            address_key(text)
    if "/" not in text and text:
        with pytest.raises(AddressError):
            parse_network(text)
