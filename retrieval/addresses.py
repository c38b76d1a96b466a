"""Which IP addresses the fetcher may connect to: the one place the deny-list lives.

An address is refused when the standard library's ``ipaddress`` calls it anything but global (private, loopback,
link-local, multicast, reserved, unspecified, site-local), or when it falls in one of ``SPECIAL_NETWORKS`` below: the
IANA special-purpose registries' blocks that are not meant to be reached on the public internet, listed explicitly
because ``ipaddress``'s view of them changed between Python versions (``192.0.0.0/24``, ``fec0::/10``, ...).
Addresses that embed an IPv4 address (IPv4-mapped, 6to4, NAT64) are judged by the embedded one as well.

Sources: IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and its updates), RFC 3879 (site-local).
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SPECIAL_NETWORKS: dict[str, str] = {
    # IPv4
    "0.0.0.0/8": "this network",
    "10.0.0.0/8": "private",
    "100.64.0.0/10": "shared address space (carrier-grade NAT)",
    "127.0.0.0/8": "loopback",
    "169.254.0.0/16": "link-local",
    "172.16.0.0/12": "private",
    "192.0.0.0/24": "IETF protocol assignments",
    "192.0.2.0/24": "documentation (TEST-NET-1)",
    "192.88.99.0/24": "deprecated 6to4 relay anycast",
    "192.168.0.0/16": "private",
    "198.18.0.0/15": "benchmarking",
    "198.51.100.0/24": "documentation (TEST-NET-2)",
    "203.0.113.0/24": "documentation (TEST-NET-3)",
    "224.0.0.0/4": "multicast",
    "240.0.0.0/4": "reserved",
    "255.255.255.255/32": "limited broadcast",
    # IPv6
    "::/128": "unspecified",
    "::1/128": "loopback",
    "::/96": "deprecated IPv4-compatible",
    "64:ff9b:1::/48": "local-use IPv4/IPv6 translation",
    "100::/64": "discard-only",
    "2001::/23": "IETF protocol assignments (Teredo, ORCHID, ...)",
    "2001:db8::/32": "documentation",
    "3fff::/20": "documentation",
    "5f00::/16": "segment routing (SRv6) SIDs",
    "fc00::/7": "unique local",
    "fe80::/10": "link-local",
    "fec0::/10": "deprecated site-local",
    "ff00::/8": "multicast",
}
_NETWORKS = [ipaddress.ip_network(n) for n in SPECIAL_NETWORKS]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def parse_ip(host: str) -> IPAddress | None:
    """The address of an IP literal (``[::1]`` and zone ids accepted), None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def special_range(ip: IPAddress) -> str | None:
    """The name of the special-purpose block ``ip`` lies in, or None."""
    for net, name in zip(_NETWORKS, SPECIAL_NETWORKS.values()):
        if ip.version == net.version and ip in net:
            return name
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def ip_is_forbidden(ip: IPAddress) -> bool:
    """True when the fetcher must not connect to ``ip`` (see the module docstring)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.teredo is not None:
            return True
        inner = _embedded_ipv4(ip)
        if inner is not None:  # the IPv4 address it reaches decides
            return ip_is_forbidden(inner)
        if ip.is_site_local:
            return True
    if special_range(ip) is not None:
        return True
    return (not ip.is_global) or ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local \
        or ip.is_private or ip.is_unspecified
