"""What the servers and the app log about a request: patient-link tokens masked, control characters escaped.

The path of a patient's link, `/p/<token>`, is the credential (catalogue case 27): a log keeps only a short
hash of it, the first 12 hex digits of the SHA-256 the link's row is found by (enough to find the link,
useless to open it). A decoded path, a header or a form field can carry CR/LF or a terminal's escape codes
(case 36): each value taken from a request is escaped (`\\x0d`, and `\\\\` for a backslash) before it is
written, so nothing a client sends starts a line of its own.

Where: gunicorn's access log (`gunicorn.conf.py` names `AccessLogger`), the app's own log handler, and
werkzeug's development server (which escapes its request line itself: only the token is masked there).
"""

import hashlib
import logging
import re

from flask import Flask
from flask.logging import default_handler
from gunicorn.glogging import Logger, SafeAtoms

LINK = re.compile(r"(/p/)(?!visit(?:[/?#\s\"']|$))([^/?#\s\"']+)")
ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), *range(0x7F, 0xA0)]} | {ord("\\"): "\\\\"}


def mask(text: str) -> str:
    """`text` with every patient-link token replaced by a short hash of it."""
    return LINK.sub(lambda m: f"{m.group(1)}<{hashlib.sha256(m.group(2).encode()).hexdigest()[:12]}>", text)


def clean(text: str) -> str:
    """`text` with link tokens masked and control characters (and backslashes) escaped: one line, no secret."""
    return mask(text).translate(ESCAPES)


class RequestValues(logging.Filter):
    """Cleans the values a record's message is formatted with (the format itself is the program's)."""

    def __init__(self, fix=clean):
        super().__init__()
        self.fix = fix

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            record.args = {k: self._value(v) for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(self._value(v) for v in record.args)
        return True

    def _value(self, value):
        return self.fix(value) if isinstance(value, str) else value


# werkzeug escapes control characters in its request line and then colours it: mask the token only.
_WERKZEUG = RequestValues(fix=mask)
_APP = RequestValues()


def init_app(app: Flask) -> None:
    logging.getLogger("werkzeug").addFilter(_WERKZEUG)  # the same filter once, however many apps are made
    default_handler.addFilter(_APP)
    app.logger  # noqa: B018 (Flask gives the app's loggers its handler, unless logging is configured, on first use)


class _CleanAtoms(SafeAtoms):
    def __init__(self, atoms: dict):
        super().__init__({k: clean(v) if isinstance(v, str) else v for k, v in atoms.items()})


class AccessLogger(Logger):
    """gunicorn's logger, its access log's values (path, query, headers, ...) cleaned."""

    atoms_wrapper_class = _CleanAtoms
