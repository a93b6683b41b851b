"""The one place that reads and writes HX-* headers, and decides where a request may send the browser next."""

from urllib.parse import urlsplit

from flask import Response, redirect, render_template, request
from jinja2_fragments.flask import render_block


def is_htmx() -> bool:
    """An htmx request that wants a fragment (not a boosted navigation or a history restore)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Boosted") != "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def target() -> str | None:
    """The id of the element an htmx request will swap (None for a plain request)."""
    return request.headers.get("HX-Target") if request.headers.get("HX-Request") == "true" else None


def is_htmx_any() -> bool:
    """Any request made by htmx, boosted or not."""
    return request.headers.get("HX-Request") == "true"


def render(template: str, block: str, status: int = 200, **context) -> Response:
    """Render the whole page, or only `block` for an htmx request; always `Vary: HX-Request`."""
    if is_htmx():
        return html(render_block(template, block, **context), status)
    return html(render_template(template, **context), status)


def render_partial(template: str, status: int = 200, **context) -> Response:
    """A partial template alone (a piece several pages share, swapped in by htmx)."""
    return html(render_template(template, **context), status)


def html(body: str, status: int = 200) -> Response:
    """An HTML answer whose body depends on HX-Request (so caches keep the page and the fragment apart)."""
    return varies(Response(body, status=status, mimetype="text/html"))


def varies(response: Response) -> Response:
    """Mark a response as depending on HX-Request (`Vary`)."""
    response.vary.add("HX-Request")
    return response


def client_redirect(location: str) -> Response:
    """Send the browser to a page: `HX-Redirect` for htmx (never a page in a fragment), else 303."""
    if is_htmx_any():
        response = Response(status=204)
        response.headers["HX-Redirect"] = location
    else:
        response = redirect(location, code=303)
    return varies(response)


def safe_next(value: str | None) -> str | None:
    """A same-site path to return to (after sign-in, a form), or None (no scheme, host, backslash or control chars)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return None
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else None


def trigger(response: Response, event: str) -> Response:
    """Have htmx fire `event` on the page when this response arrives (HX-Trigger)."""
    response.headers["HX-Trigger"] = event
    return response
