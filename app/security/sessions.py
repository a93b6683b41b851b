"""Server-side, revocable sessions stored in PostgreSQL.

The browser holds a 256-bit random token; the table holds only its SHA-256. Idle and absolute
lifetimes are enforced here on every request, from the server's clock. Requests to routes marked
`background` (polling) do not move the idle clock. Rotation (at sign-in and after MFA) issues a
new token and deletes the old row, so a planted or copied cookie is useless afterwards.

When the database cannot be reached, a session that could not be read fails the request before any
other check (an `app.db.unavailable` error, answered 503 with the input kept), and a session that
cannot be saved never turns committed work into an error: the answer stands, the row keeps its last
state. Only a new or ended session, or one whose request committed nothing, fails for it.
"""

import hashlib
import logging
import math
import secrets
import uuid
from datetime import timedelta

from flask import Flask, Request, Response, current_app, g, request
from flask import session as current_session
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete, insert, select, text, update
from werkzeug.datastructures import CallbackDict

from app.db import DATABASE_ERRORS, committed, unavailable, utcnow
from app.security.client import client_address
from app.security.models import UserSession
from app.security.text import printable

log = logging.getLogger(__name__)


class ServerSession(CallbackDict, SessionMixin):
    """Session data plus the server-side facts about it (stage, user, clinic, times)."""

    def __init__(self, data=None, token=None, row=None):
        def on_update(s):
            s.modified = True

        super().__init__(data or {}, on_update)
        self.token = token
        self.row = row
        self.modified = False
        self.rotate_requested = False
        self.destroyed = False
        self.expired_reason: str | None = None
        self.unavailable: Exception | None = None  # the store could not be read

    @property
    def new(self) -> bool:
        return self.row is None

    def rotate(self) -> None:
        """Issue a new session id at the next save (and drop the CSRF token with the old one)."""
        self.rotate_requested = True
        self.pop("csrf_token", None)

    def destroy(self) -> None:
        """End this session on the server and clear the cookie."""
        self.clear()
        self.destroyed = True


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def cookie_name(app: Flask) -> str:
    return "__Host-clinicdesk" if app.config["HTTPS"] else "clinicdesk_session"


def init_app(app: Flask) -> None:
    """Sessions in PostgreSQL; an unreadable store fails the request first (before CSRF and sign-in checks)."""
    app.session_interface = PostgresSessionInterface()
    app.before_request(_require_store)


def _require_store() -> None:
    failure = getattr(current_session, "unavailable", None)
    if failure is not None:
        raise failure


class PostgresSessionInterface(SessionInterface):
    def open_session(self, app: Flask, req: Request) -> ServerSession:
        token = req.cookies.get(cookie_name(app))
        if not token or _is_static(app, req):
            return ServerSession()  # static files neither read nor extend the session
        try:
            return self._open(app, token)
        except DATABASE_ERRORS as exc:
            if not unavailable(exc):
                raise
            unreadable = ServerSession()
            unreadable.unavailable = exc
            return unreadable

    def _open(self, app: Flask, token: str) -> ServerSession:
        engine = app.extensions["db_engine"]
        with engine.connect() as conn:
            row = conn.execute(select(UserSession).where(UserSession.id == token_hash(token))).mappings().first()
        if row is None:
            session = ServerSession()
            session.expired_reason = "unknown"
            return session
        reason = _expiry_reason(app, row)
        if reason:
            session = ServerSession()
            session.expired_reason = reason
            session.stale_row = row
            with engine.begin() as conn:
                conn.execute(delete(UserSession).where(UserSession.id == row["id"]))
            return session
        return ServerSession(dict(row["data"]), token=token, row=row)

    def save_session(self, app: Flask, session: ServerSession | None, response: Response) -> None:
        if session is None or session.unavailable is not None:
            return  # never read, so nothing to save: the cookie stays as it was
        try:
            self._save(app, session, response)
        except DATABASE_ERRORS as exc:
            if not unavailable(exc) or not _may_stay_unsaved(session, response):
                session.unavailable = exc  # the error page's own save must not half-succeed on a new connection
                raise
            log.warning("session not saved (%s); the answer stands: %s %s", type(exc).__name__,
                        response.status_code, request.endpoint)

    def _save(self, app: Flask, session: ServerSession, response: Response) -> None:
        name = cookie_name(app)
        cookie = {"path": "/", "secure": app.config["HTTPS"], "httponly": True, "samesite": "Lax"}
        response.vary.add("Cookie")
        if session.destroyed or (session.new and not session and session.expired_reason):
            self._delete(app, session)
            response.delete_cookie(name, **cookie)
            return
        if session.new and not session:
            return  # nothing to remember: no row, no cookie
        values = _row_values(session)
        fresh = session.new or session.rotate_requested
        if not fresh and all(session.row[k] == v for k, v in values.items()):
            return  # a poll that changed nothing writes nothing
        with app.extensions["db_engine"].begin() as conn:
            # The session row is no record: losing its last write to a crash at worst signs someone out.
            # Its commit need not wait for the disk (the audit trail's commits still do).
            conn.execute(text("SET LOCAL synchronous_commit = off"))
            if fresh:
                if session.row is not None:
                    conn.execute(delete(UserSession).where(UserSession.id == session.row["id"]))
                session.token = secrets.token_urlsafe(32)
                conn.execute(insert(UserSession).values({
                    **values, "id": token_hash(session.token), "created_at": values["last_activity_at"],
                    "ip": client_address(), "user_agent": printable(request.user_agent.string, 200)}))
            else:
                conn.execute(update(UserSession).where(UserSession.id == session.row["id"]).values(**values))
        if fresh:  # only once its row is committed
            response.set_cookie(name, session.token, **cookie)

    def _delete(self, app: Flask, session: ServerSession) -> None:
        if session.row is not None:
            with app.extensions["db_engine"].begin() as conn:
                conn.execute(delete(UserSession).where(UserSession.id == session.row["id"]))


def _may_stay_unsaved(session: ServerSession, response: Response) -> bool:
    """A session write that failed may be let go when the answer already says something failed, or when
    the request committed its work and the session keeps its identity (at worst a notice or the activity
    time is lost). A new, rotated or ended session, or a request that committed nothing, must fail; an
    ended session must fail even behind a refusal (a 403 that signs out must really sign out)."""
    if session.destroyed:
        return False
    if response.status_code >= 400:
        return True
    return committed() and not (session.new or session.rotate_requested)


def _is_static(app: Flask, req: Request) -> bool:
    return req.path.startswith(app.static_url_path + "/")


def _row_values(session: ServerSession) -> dict:
    """The columns kept beside the data: who, which stage of sign-in, which clinic, activity."""
    now = utcnow()
    user_id = session.get("_user_id")
    pending = session.get("pending_user_id")
    values = {
        "data": dict(session),
        "user_id": _uuid(user_id or pending),
        "stage": "full" if user_id else ("password" if pending else "anonymous"),
        "active_clinic_id": _uuid(session.get("clinic_id")),
    }
    fresh = session.new or session.rotate_requested
    # Polling, probes and unknown URLs are not the user at work.
    background = getattr(g, "background_request", False) or request.endpoint is None
    if fresh or not background:
        values["last_activity_at"] = now
    if user_id and (fresh or session.row["authenticated_at"] is None):
        values["authenticated_at"] = now
    return values


def _uuid(value) -> uuid.UUID | None:
    """An id kept in the session data (as text) the way its column gives it back, so an unchanged session
    compares equal to its row and is not written again."""
    return uuid.UUID(str(value)) if value else None


def _expiry_reason(app: Flask, row) -> str | None:
    now = utcnow()
    if now - row["last_activity_at"] > timedelta(seconds=app.config["SESSION_IDLE_SECONDS"]):
        return "idle"
    started = row["authenticated_at"] or row["created_at"]
    if now - started > timedelta(seconds=app.config["SESSION_MAX_SECONDS"]):
        return "max"
    return None


def seconds_left(session: ServerSession) -> int:
    """Seconds until this session's idle or absolute limit, whichever comes first."""
    if session.row is None:
        return current_app.config["SESSION_IDLE_SECONDS"]
    now = utcnow()
    idle_end = session.row["last_activity_at"] + timedelta(seconds=current_app.config["SESSION_IDLE_SECONDS"])
    started = session.row["authenticated_at"] or session.row["created_at"]
    max_end = started + timedelta(seconds=current_app.config["SESSION_MAX_SECONDS"])
    # Round up: 0 must mean "expired", never "less than a second left".
    return max(0, math.ceil((min(idle_end, max_end) - now).total_seconds()))


def note_password(session: ServerSession) -> None:
    """Remember that the user typed their password in this session just now (sign-in or confirmation)."""
    session["password_at"] = int(utcnow().timestamp())


def password_within(session: ServerSession, seconds: int) -> bool:
    """Whether the user typed their password in this session within the last `seconds`."""
    at = session.get("password_at")
    return isinstance(at, int) and 0 <= utcnow().timestamp() - at <= seconds


def end_sessions_of(user_id, *, keep: str | None = None) -> None:
    """Revoke every session of a user at once (optionally keeping the caller's own)."""
    stmt = delete(UserSession).where(UserSession.user_id == user_id)
    if keep:
        stmt = stmt.where(UserSession.id != token_hash(keep))
    with current_app.extensions["db_engine"].begin() as conn:
        conn.execute(stmt)
