"""Which client a request comes from: its peer, or the client named in X-Forwarded-For by a proxy we trust.

Only addresses in FORWARDED_ALLOW_IPS are trusted (none by default). On the embedded default every
client reaches uvicorn from loopback, so trusting loopback would let anyone name any address.
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """Addresses and networks (`10.0.0.0/8`), or `*` for any peer, as uvicorn reads FORWARDED_ALLOW_IPS."""

    def __init__(self, entries: tuple[str, ...] | list[str]):
        self._any = "*" in entries
        self._networks: list[Network] = []
        self._names: set[str] = set()
        for entry in entries:
            if entry == "*":
                continue
            try:
                self._networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self._names.add(entry)  # a literal peer name an ASGI server reports (a test client's)

    def __bool__(self) -> bool:
        return self._any or bool(self._networks or self._names)

    def __contains__(self, host: str) -> bool:
        if self._any or host in self._names:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self._networks)

    def client(self, peer: str | None, forwarded_for: str | None) -> str:
        """The peer; or, when the peer is trusted, the nearest address in X-Forwarded-For that is not."""
        if peer is None or not forwarded_for or peer not in self:
            return peer or "unknown"
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if hop not in self:
                return hop
        return hops[0] if hops else peer
