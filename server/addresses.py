"""IP addresses and networks as fixed-width keys, so a network is a range of strings.

Why it exists: moderators look people up by address or network ("who signed in from
203.0.113.0/24?") and block networks, on SQLite and PostgreSQL alike. Every address is
stored beside its *key*: the 128-bit IPv6 form (an IPv4 address as ``::ffff:a.b.c.d``) in
32 lower-case hex digits. Keys sort as the addresses do, so a network is the key range
``[first, last]`` — one indexed ``BETWEEN`` on either database, no ``inet`` type needed.

What it must never do: accept something that is not an address or network (the caller
turns ``AddressError`` into a 422), or let host bits pass silently in a stored network
(``192.0.2.7/24`` is normalised to ``192.0.2.0/24``, as PostgreSQL's ``cidr`` would refuse it).
"""

from __future__ import annotations

import ipaddress

KEY_LENGTH = 32
IPV4_MAPPED = 0xFFFF << 32


class AddressError(ValueError):
    """Not an IP address or network."""


def _as_v6_int(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    if isinstance(address, ipaddress.IPv4Address):
        return IPV4_MAPPED | int(address)
    mapped = address.ipv4_mapped
    return IPV4_MAPPED | int(mapped) if mapped is not None else int(address)


def _key(value: int) -> str:
    return f"{value:0{KEY_LENGTH}x}"


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """One address (an IPv4-mapped IPv6 address is read as the IPv4 address it is)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise AddressError(f"{text!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            raise AddressError(f"{text!r} is not an IP address (it names a zone)")
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def address_key(text: str) -> str:
    """The key of one address."""
    return _key(_as_v6_int(parse_address(text)))


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A network in CIDR notation, or one address (a /32 or /128); host bits are cleared."""
    raw = text.strip()
    if "%" in raw:
        raise AddressError(f"{text!r} is not an IP network (it names a zone)")
    try:
        network = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        raise AddressError(f"{text!r} is not an IP address or network (CIDR, e.g. 192.0.2.0/24)") from None
    if isinstance(network, ipaddress.IPv6Network):
        mapped = network.network_address.ipv4_mapped
        if mapped is not None and network.prefixlen >= 96:
            return ipaddress.IPv4Network(f"{mapped}/{network.prefixlen - 96}", strict=False)
    return network


def network_range(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[str, str]:
    """The first and last key of the network's addresses."""
    return (_key(_as_v6_int(network.network_address)),
            _key(_as_v6_int(network.broadcast_address)))


def network_text(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """As Mastodon writes an IpBlock's ``ip``: always with its prefix length."""
    return f"{network.network_address}/{network.prefixlen}"
