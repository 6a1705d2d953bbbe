"""Who is on the other end: the client address of a request (SPEC §9).

The client address is the socket peer (ASGI ``scope["client"]``), or the first
entry of ``X-Forwarded-For`` when the peer is one of ``[server]
trusted_proxies``. The first entry is what the client told the proxy, so a
trusted proxy must set the header rather than append to it (docs/operations.md).
Anonymous rate limits and the ``[metrics] allow`` list use this address.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from queuey.api.http import Scope

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> Address | None:
    """An IP address as a peer or a proxy wrote it (``[v6]:port`` and ``v4:port`` too)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        found = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


class Networks:
    """A set of addresses and networks (``"10.0.0.0/8"``, ``"::1"``); ``in`` takes address text."""

    def __init__(self, items: Iterable[str]) -> None:
        self.networks = tuple(ipaddress.ip_network(i, strict=False) for i in items)
        # Peers repeat: remember the answer for the last few thousand addresses.
        self._contains = functools.lru_cache(maxsize=4096)(self._check)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and self._contains(address)

    def _check(self, text: str) -> bool:
        address = parse_address(text)
        return address is not None and any(
            address.version == n.version and address in n for n in self.networks
        )


class ClientAddress:
    """The client address of a request, as text (``""`` when the server gave none)."""

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self.trusted = Networks(trusted_proxies)

    def __call__(self, scope: Scope) -> str:
        client = scope.get("client")
        peer: str = client[0] if client else ""
        if not self.trusted or peer not in self.trusted:
            return peer
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                first = parse_address(value.decode("latin-1").split(",", 1)[0])
                return str(first) if first is not None else peer
        return peer
