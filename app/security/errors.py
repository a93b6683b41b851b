"""Friendly error pages; for htmx requests a short notice the page shows instead of swapping."""

import logging

from flask import Flask, Response, g, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from app.htmx import is_htmx_any
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
}


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf)
    app.register_error_handler(DecryptionError, _unreadable)
    app.register_error_handler(HTTPException, _http)
    app.register_error_handler(Exception, _unexpected)


def error_response(status: int, message: str | None = None) -> Response:
    session = g.get("db_session")
    if session is not None:
        session.rollback()  # nothing half-done is committed, and the page can still render
    title, default = MESSAGES.get(status, MESSAGES[400])
    text = message or default
    if is_htmx_any():
        response = Response(text, status=status, mimetype="text/plain")
    else:
        response = Response(render_template("errors/error.html", status=status, title=title, message=text),
                            status=status, mimetype="text/html")
    response.vary.add("HX-Request")
    return response


def _csrf(exc: CSRFError) -> Response:
    return error_response(400, "This form has expired or did not come from ClinicDesk. Reload the page and try again.")


def _http(exc: HTTPException) -> Response:
    if exc.code is None or exc.code < 400:
        return exc
    described = exc.description if exc.description and exc.description != type(exc).description else None
    return error_response(exc.code, described)


def _unreadable(exc: DecryptionError) -> Response:
    # Logged where it happened (which field of which row); the user learns nothing more.
    return error_response(500, "A protected record could not be read. The problem has been logged for the "
                               "clinic's administrator; nothing was changed.")


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error")
    return error_response(InternalServerError.code)
