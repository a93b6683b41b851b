"""Server-side, revocable sessions stored in PostgreSQL.

The browser holds a 256-bit random token; the table holds only its SHA-256. Idle and absolute
lifetimes are enforced here on every request, from the server's clock. Requests to routes marked
`background` (polling) do not move the idle clock. Rotation (at sign-in and after MFA) issues a
new token and deletes the old row, so a planted or copied cookie is useless afterwards.
"""

import hashlib
import math
import secrets
from datetime import timedelta

from flask import Flask, Request, Response, current_app, g, request
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete, insert, select, text, update
from werkzeug.datastructures import CallbackDict

from app.auth.models import UserSession
from app.db import utcnow
from app.security.text import printable


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


class PostgresSessionInterface(SessionInterface):
    def open_session(self, app: Flask, req: Request) -> ServerSession:
        token = req.cookies.get(cookie_name(app))
        if not token or _is_static(app, req):
            return ServerSession()  # static files neither read nor extend the session
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

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:
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
                    "ip": request.remote_addr, "user_agent": printable(request.user_agent.string, 200)}))
                response.set_cookie(name, session.token, **cookie)
            else:
                conn.execute(update(UserSession).where(UserSession.id == session.row["id"]).values(**values))

    def _delete(self, app: Flask, session: ServerSession) -> None:
        if session.row is not None:
            with app.extensions["db_engine"].begin() as conn:
                conn.execute(delete(UserSession).where(UserSession.id == session.row["id"]))


def _is_static(app: Flask, req: Request) -> bool:
    return req.path.startswith(app.static_url_path + "/")


def _row_values(session: ServerSession) -> dict:
    """The columns kept beside the data: who, which stage of sign-in, which clinic, activity."""
    now = utcnow()
    user_id = session.get("_user_id")
    pending = session.get("pending_user_id")
    values = {
        "data": dict(session),
        "user_id": user_id or pending,
        "stage": "full" if user_id else ("password" if pending else "anonymous"),
        "active_clinic_id": session.get("clinic_id"),
    }
    fresh = session.new or session.rotate_requested
    # Polling, probes and unknown URLs are not the user at work.
    background = getattr(g, "background_request", False) or request.endpoint is None
    if fresh or not background:
        values["last_activity_at"] = now
    if user_id and (fresh or session.row["authenticated_at"] is None):
        values["authenticated_at"] = now
    return values


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
