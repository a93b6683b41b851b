"""`Server-Timing` on every response, for the benchmark and for operators (off unless SERVER_TIMING=1).

A WSGI middleware counts the SQL statements each request sends through the app's engine and the time
they take, from the first byte of the request to the moment the response starts (so the sign-in
session's save after the view is counted too), and adds

    Server-Timing: db;dur=12.3;desc="19 statements", app;dur=40.1

The numbers say how long a request took and how much it asked of the database; they say nothing of
what it read. Still, timing details help an attacker probe, so production leaves it off.
"""

import threading
import time as clock

from sqlalchemy import event


class ServerTiming:
    def __init__(self, wsgi_app, engine):
        self.wsgi_app = wsgi_app
        self.local = threading.local()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if getattr(self.local, "statements", None) is not None:
            self.local.statements += 1
            self.local.began = clock.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if getattr(self.local, "statements", None) is not None:
            self.local.db += clock.perf_counter() - self.local.began

    def __call__(self, environ, start_response):
        local = self.local
        local.statements, local.db, began = 0, 0.0, clock.perf_counter()

        def start(status, headers, exc_info=None):
            app_ms = (clock.perf_counter() - began) * 1000
            headers.append(("Server-Timing", f'db;dur={local.db * 1000:.1f};desc="{local.statements} statements", '
                                             f"app;dur={app_ms:.1f}"))
            local.statements = None
            return start_response(status, headers, exc_info)

        try:
            return self.wsgi_app(environ, start)
        finally:
            local.statements = None


def init_app(app) -> None:
    if app.config.get("SERVER_TIMING"):
        app.wsgi_app = ServerTiming(app.wsgi_app, app.extensions["db_engine"])
