"""Where a webhook may go: private destinations are refused (SSRF).

A destination is checked when a subscription is saved and again before every send (DNS
may have changed since). The host is resolved once and the request is sent to the very
address that was checked — the URL is *pinned* to it, while the ``Host`` header and the
TLS SNI (so certificate checks too) keep the name — so a name that resolves to a public
address for the check and to 127.0.0.1 for the connection (DNS rebinding) gets nowhere.

Refused unless allow-listed (``QIAO_WEBHOOK_ALLOW_HOSTS``): every address that is not
publicly routable — private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback, link-local
(169.254/16, where cloud metadata lives), multicast, reserved, unspecified, shared
(100.64/10) — including IPv4 inside IPv6 (``::ffff:127.0.0.1``, 6to4, NAT64). A host is
allowed when its name is listed (it is then resolved by the HTTP client as usual), or
when each of its addresses is listed or inside a listed network.

Only ``http`` and ``https``; plain ``http`` only for an allow-listed destination, since
the body may hold customer data. No credentials in the URL (the signature authenticates
Qiao). Redirects are never followed by the sender.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Any

import httpx

from platform_core.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
SETTING = "QIAO_WEBHOOK_ALLOW_HOSTS"
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class UnsafeDestination(InvalidInput):
    """A webhook URL whose host is (or resolves to) an address webhooks may not reach."""

    code, title = "unsafe_webhook_url", "Unsafe webhook URL"


@dataclass(frozen=True)
class AllowList:
    """Hostnames and networks (an IP is a /32 or /128) exempt from the address check."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowList:
        """From ``"hooks.internal, 127.0.0.1, 10.1.0.0/16"``; ValueError names a bad entry."""
        hosts: set[str] = set()
        networks: list[Network] = []
        for raw in text.split(","):
            entry = raw.strip().lower().rstrip(".").removeprefix("[").replace("]", "")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if not _HOSTNAME.fullmatch(entry):
                    raise ValueError(f"{raw.strip()!r} is not a hostname, an IP address or "
                                     "a CIDR network") from None
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(networks))

    def allows_host(self, host: str) -> bool:
        return host in self.hosts

    def allows_address(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.networks)


@dataclass(frozen=True)
class Destination:
    """Where to send: the URL to connect to and what pinning adds to the request."""

    url: httpx.URL
    allow_listed: bool
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to, IPv4 first (tests replace this function)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = {ipaddress.ip_address(info[4][0]) for info in infos}
    return sorted(found, key=lambda ip: (ip.version, int(ip)))


def _embedded(ip: IPAddress) -> list[IPAddress]:
    """``ip`` and any IPv4 address carried inside it (mapped, 6to4, Teredo, NAT64)."""
    out: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        out += [a for a in (ip.ipv4_mapped, ip.sixtofour) if a is not None]
        out += list(ip.teredo or ())
        if ip in _NAT64:
            out.append(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
    return out


def _kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not public (``"loopback"`` …), or None for a public address."""
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "non-public"


def _listed(ip: IPAddress, allow: AllowList) -> bool:
    return any(allow.allows_address(a) for a in _embedded(ip))


def _check_address(host: str, ip: IPAddress, allow: AllowList) -> None:
    if _listed(ip, allow):
        return
    for inner in reversed(_embedded(ip)):  # the IPv4 inside first: the clearer reason
        kind = _kind(inner)
        if kind is not None and not allow.allows_address(inner):
            via = "" if str(ip) == host else f" resolves to {ip}, which"
            raise UnsafeDestination(
                f"webhook URL refused: {host}{via} is a {kind} address ({inner}); webhooks "
                f"may only reach public addresses unless the host is listed in {SETTING}",
                host=host, address=str(inner), reason=kind)


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise InvalidInput(f"url: {url!r} is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise InvalidInput("url: only http:// and https:// URLs can receive webhooks")
    if not parsed.raw_host:
        raise InvalidInput("url: the URL has no host")
    if parsed.userinfo:
        raise InvalidInput("url: credentials in the URL are not allowed (deliveries are "
                           "authenticated by their signature)")
    return parsed


def check_url(url: str, allow: AllowList) -> Destination:
    """The destination of ``url`` if webhooks may reach it; else ``InvalidInput`` (bad
    URL) or ``UnsafeDestination`` (a refused address), both 422 with a clear message."""
    parsed = _parse(url)
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if allow.allows_host(host):
        return Destination(parsed, allow_listed=True)
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        literal = True
    except ValueError:
        try:
            addresses, literal = resolve(host, port), False
        except (OSError, UnicodeError) as exc:  # UnicodeError: a label over 63 characters
            reason = getattr(exc, "strerror", None) or exc
            raise UnsafeDestination(f"webhook URL refused: host {host} does not resolve "
                                    f"({reason})", host=host, reason="unresolvable") from None
    if not addresses:
        raise UnsafeDestination(f"webhook URL refused: host {host} has no address",
                                host=host, reason="unresolvable")
    for ip in addresses:
        _check_address(host, ip, allow)
    listed = all(_listed(ip, allow) for ip in addresses)
    if parsed.scheme == "http" and not listed:
        raise UnsafeDestination(f"webhook URL refused: use https:// (plain http:// is only "
                                f"allowed for hosts listed in {SETTING})", host=host,
                                reason="insecure_scheme")
    if literal:
        return Destination(parsed, allow_listed=listed)
    pinned = parsed.copy_with(host=str(addresses[0]))
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    # The pool keys connections by address: one opened with another host's TLS name (a CDN
    # serves many names from one address) must not be reused, so none is kept.
    headers = {"Host": parsed.netloc.decode("ascii"), "Connection": "close"}
    return Destination(pinned, allow_listed=listed, headers=headers, extensions=extensions)
