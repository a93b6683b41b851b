"""Untrusted text (request headers, typed reasons) made safe to store and to MAC; and text no column can
store (a NUL byte: PostgreSQL's text refuses it) refused at the door, whichever field it came in."""

from flask import Flask, request

from app.security.errors import error_response

NUL = "\x00"
NUL_MESSAGE = ("What you sent contains a null character (\\0), which ClinicDesk cannot store. "
               "Remove it and try again.")


def printable(text: str | None, limit: int) -> str | None:
    """Text without control characters (NUL, newlines, separators), cut to `limit`."""
    if text is None:
        return None
    return "".join(ch for ch in text if ch.isprintable())[:limit]


def init_app(app: Flask) -> None:
    app.before_request(_refuse_nul)


def _refuse_nul():
    """422 for a NUL byte in the path, the query or a form field (name or value); files may hold any bytes."""
    if NUL in request.path or _has_nul(request.args) or (request.method != "GET" and _has_nul(request.form)):
        return error_response(422, NUL_MESSAGE)
    return None


def _has_nul(fields) -> bool:
    return any(NUL in key or NUL in value for key, value in fields.items(multi=True))
