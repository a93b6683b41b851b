"""CSRF: Flask-WTF's form token, then the request's origin; checked by the guard (app/auth/guard.py) once it
knows the session is alive, so an expired session's last form is sent to sign in, not refused as forged.

The origin check (catalogue case 16) holds on either scheme: an unsafe request whose `Origin` (or, when a
browser sends none, `Referer`) is not the app's own is refused, `Origin: null` included. The app's own
origins are the address the request reached (with TRUSTED_PROXIES, as the proxy reports it; on https when
HTTPS is set) and PUBLIC_URL. A request that names neither is no browser's (every browser in use sends
`Origin` with a POST, `null` when it hides it) and carries no one's cookies but its sender's; it still needs
the token, and on HTTPS it is refused, as Flask-WTF's Referer check (which this replaces) refused it.
Views exempt from the token (Twilio's signed webhooks) are exempt from the origin too.
"""

from urllib.parse import urlsplit

from flask import current_app, g, request
from flask_wtf import csrf as wtf_csrf

DEFAULT_PORTS = {"http": 80, "https": 443}


class CSRFProtect(wtf_csrf.CSRFProtect):
    def check(self) -> None:
        """Refuse (CSRFError) an unsafe request without this session's token or from another origin."""
        if current_app.config["WTF_CSRF_ENABLED"]:
            self.protect(apply_exemptions=True)

    def protect(self, apply_exemptions: bool = False) -> None:
        super().protect(apply_exemptions=apply_exemptions)
        if g.get("csrf_valid"):  # the token was checked: not an exempt view, not a safe method
            _same_origin()


csrf = CSRFProtect()  # the app's one instance: create_app initialises it, blueprints mark exempt views on it


def _same_origin() -> None:
    claimed = request.headers.get("Origin")
    if claimed is None:
        claimed = request.headers.get("Referer")
    if claimed is None:
        if request.is_secure or current_app.config["HTTPS"]:
            raise wtf_csrf.CSRFError("The request names no origin.")
        return
    if origin_of(claimed) not in own_origins():
        raise wtf_csrf.CSRFError("The request came from another origin.")


def own_origins() -> set[str]:
    """The origins this app is served at: the one this request reached, and the configured public one."""
    schemes = {request.scheme, "https"} if current_app.config["HTTPS"] else {request.scheme}
    origins = {origin_of(f"{scheme}://{request.host}") for scheme in schemes}
    origins.add(origin_of(current_app.config["PUBLIC_URL"]))
    return origins - {None}


def origin_of(url: str) -> str | None:
    """`scheme://host:port` of a URL, normalised (case, default port); None when it has none (`null`)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return f"{scheme}://{parts.hostname}:{port or DEFAULT_PORTS[scheme]}"
