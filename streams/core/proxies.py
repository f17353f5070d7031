"""Who is really asking: the client address and scheme behind a trusted reverse proxy.

Pure (no Flask): the caller passes the peer address and header values. Headers that a
client can write (X-Forwarded-For, X-Forwarded-Proto, the SSO headers) are believed only
when the peer is one of ``DISPATCH_TRUSTED_PROXIES``; otherwise one proxy address would put
every user behind it into one sign-in bucket, and anyone could claim any address.
The web app (``dashboard.auth``) and the push service (the address in its audit entries)
both ask this one rule.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[v6]:port"
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # "v4:port"
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class TrustedProxies:
    """The reverse proxies whose forwarding headers are believed."""

    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedProxies:
        """From addresses or networks ("127.0.0.1", "10.0.0.0/8"); ValueError names a bad one."""
        networks = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(f"DISPATCH_TRUSTED_PROXIES: {entry!r} is not an address or "
                                 "network") from None
        return cls(tuple(networks))

    def trusts(self, address: str | None) -> bool:
        parsed = _address(address or "")
        return parsed is not None and any(parsed in network for network in self.networks)

    def client_address(self, peer: str | None, forwarded_for: Iterable[str]) -> str:
        """The client's address: the peer, unless the peer is a trusted proxy; then the
        nearest X-Forwarded-For hop that is not a trusted proxy (hops further left were
        written by whoever sent the request and prove nothing)."""
        address = peer or "unknown"
        if not self.trusts(peer):
            return address
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed([hop for hop in hops if hop]):
            parsed = _address(hop)
            if parsed is None:
                break  # garbage from the client side: keep the last address we trust
            address = str(parsed)
            if not self.trusts(address):
                break
        return address

    def is_https(self, scheme: str, peer: str | None, forwarded_proto: str | None) -> bool:
        """True when the browser's request came over https (to us, or to the trusted proxy)."""
        if scheme == "https":
            return True
        if forwarded_proto and self.trusts(peer):
            return forwarded_proto.split(",")[0].strip().lower() == "https"
        return False
