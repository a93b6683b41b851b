"""The client's address: the one place that reads it from the request.

ProxyFix (app/__init__.py) has already put the address the trusted proxies saw into REMOTE_ADDR, so
X-Forwarded-For is never read here.
"""

import ipaddress

from flask import has_request_context, request


def client_address() -> str | None:
    """The request's client address as PostgreSQL's inet prints it; None outside a request or if unreadable."""
    if not has_request_context():
        return None
    try:
        return str(ipaddress.ip_address(request.remote_addr or ""))
    except ValueError:
        return None


def client_network() -> str | None:
    """The client as throttles count it: an IPv4 address alone, an IPv6 address by its /64 prefix."""
    address = client_address()
    if address is None:
        return None
    parsed = ipaddress.ip_address(address)
    if parsed.version == 4:
        return address
    if parsed.ipv4_mapped:  # ::ffff:203.0.113.7 is that IPv4 client, not the /64 every such address shares
        return str(parsed.ipv4_mapped)
    # One IPv6 subscriber holds a whole /64 and picks any address in it: count the /64, or a limit means nothing.
    return str(ipaddress.ip_network(f"{address}/64", strict=False))
