"""Friendly error pages; for htmx requests a short notice the page shows instead of swapping.

While the database cannot be reached (`app.db.unavailable`, from a view or the session store) every
request answers 503 "try again in a moment", and a plain form's POST comes back as a form filled in as
it was sent (passwords excepted), posting to the same address with a valid CSRF token, so nothing typed
is lost. The values are only echoed to the sender on a no-store page, never logged.
"""

import logging
import re

from flask import Flask, Response, g, render_template, request, session
from flask_wtf.csrf import CSRFError, generate_csrf
from werkzeug.exceptions import HTTPException, InternalServerError

from app.db import DATABASE_ERRORS, commit_outcome_unknown, unavailable
from app.htmx import is_htmx_any, varies
from app.security.crypto import DecryptionError

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Bad request", "The request could not be understood. Please go back and try again."),
    403: ("Not allowed", "Your role in this clinic does not allow this page or action."),
    404: ("Not found", "There is nothing at this address, or it belongs to another clinic."),
    405: ("Not allowed", "That action cannot be done this way."),
    413: ("Too large", "What you sent is larger than ClinicDesk accepts."),
    422: ("Cannot be stored", "Something you sent cannot be stored. Please check it and try again."),
    429: ("Too many attempts", "Too many attempts. Please wait a few minutes and try again."),
    500: ("Something went wrong",
          "The problem has been logged. Nothing you saved before this was lost; please try again."),
    503: ("Try again in a moment",
          "ClinicDesk's database did not answer just now, so nothing was saved. Please try again in a moment."),
}
MAYBE_SAVED = ("The connection to ClinicDesk's database was lost while saving, so this may or may not have "
               "been saved. Check first (look the record up) before entering it again.")
# Words in a field's name that make it secret (the authentication code fields are named plain "code").
SECRET_WORDS = {"password", "passcode", "otp", "totp", "recovery", "secret"}
RETRY_AFTER_SECONDS = 10


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf)
    app.register_error_handler(DecryptionError, _unreadable)
    for error in DATABASE_ERRORS:
        app.register_error_handler(error, _database)
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(Exception, _unexpected)


def error_response(status: int, message: str | None = None, *, template: str = "errors/error.html",
                   **page) -> Response:
    db = g.get("db_session")
    if db is not None:
        db.rollback()  # nothing half-done is committed, and the page can still render
    title, default = MESSAGES.get(status, MESSAGES[400])
    text = message or default
    if is_htmx_any():
        response = Response(text, status=status, mimetype="text/plain")
    else:
        response = Response(render_template(template, status=status, title=title, message=text, **page),
                            status=status, mimetype="text/html")
    return varies(response)


def _csrf(exc: CSRFError) -> Response:
    return error_response(400, "This form has expired or did not come from ClinicDesk. Reload the page and try again.")


def _http(exc: HTTPException) -> Response:
    if exc.code is None or exc.code < 400:
        return exc
    if unavailable(getattr(exc, "original_exception", None)):  # outside a view: the session's save
        return _unavailable(exc.original_exception)
    described = exc.description if exc.description and exc.description != type(exc).description else None
    return error_response(exc.code, described)


def _unreadable(exc: DecryptionError) -> Response:
    # Logged where it happened (which field of which row); the user learns nothing more.
    return error_response(500, "A protected record could not be read. The problem has been logged for the "
                               "clinic's administrator; nothing was changed.")


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return error_response(InternalServerError.code)


def _database(exc: Exception) -> Response:
    """A database error: 503 when the database could not be reached, else a fault like any other (500)."""
    return _unavailable(exc) if unavailable(exc) else _unexpected(exc)


def _unavailable(exc: Exception) -> Response:
    """The database is down or dropped the connection: 503 and the sent form, to send again when nothing
    was saved; when the connection was lost during the commit itself, the work may have been saved, so the
    page says so and offers no one-click Send again (a second patient or payment is worse than a retype)."""
    log.warning("database unavailable: %s %s (%s)", request.method, request.endpoint, type(exc).__name__)
    unknown = commit_outcome_unknown()
    # The page leaves out everything that needs the database (the menus, the user's name).
    page, message = {"bare": True}, (MAYBE_SAVED if unknown else None)
    if request.method == "POST" and not is_htmx_any():  # htmx keeps its form on screen
        message = message or MESSAGES[503][1] + " What you entered is kept below, to send again."
        if any(f.filename for f in request.files.values()):
            message += " A file you chose is not kept: choose it again."
        page.update(template="errors/unavailable.html", fields=_sent_fields(), csrf=_csrf_again(),
                    retype=sorted({name for name in request.form if _secret(name)}), send_again=not unknown)
    response = error_response(503, message, **page)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _secret(name: str) -> bool:
    """A field never echoed back: a password, a one-time or recovery code."""
    words = set(re.split(r"[^a-z]+", name.lower()))
    return bool(words & SECRET_WORDS) or (name == "code" and request.blueprint == "auth")


def _sent_fields() -> list[tuple[str, str]]:
    """The form as it was sent (every value of every field), but its CSRF token and any secret."""
    return [(name, value) for name, value in request.form.items(multi=True)
            if name != "csrf_token" and not _secret(name)]


def _csrf_again() -> str:
    """A token for sending again: the session's own when it could be read, else the one just sent."""
    if getattr(session, "unavailable", None) is None and "csrf_token" in session:
        return generate_csrf()
    return request.form.get("csrf_token", "")
