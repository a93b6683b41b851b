"""The logs the project sets up, read as written: a patient-link token appears only as a short hash (catalogue
case 27), and a path with CR/LF in it writes no line of its own (case 36). gunicorn runs as `make run` starts it
(reading gunicorn.conf.py), werkzeug's development server as `flask run` does, each with its real formatter."""

import hashlib
import http.client
import logging
import secrets
import subprocess
import threading
import time

import pytest
from werkzeug.serving import make_server

from app.local.run import gunicorn_command
from bench.server import free_port
from tests.conftest import ROOT, worker_env

TOKEN = secrets.token_urlsafe(32)
HASHED = hashlib.sha256(TOKEN.encode()).hexdigest()[:12]
FORGED = '127.0.0.1 "GET /admin/everything" 200 0 1ms'
# A path whose decoded form holds CR LF, then what would be a whole access-log line.
FORGING_PATH = "/x%0d%0a" + FORGED.replace(" ", "%20").replace('"', "%22")


def request(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def assert_clean(lines: list[str], crlf: str) -> None:
    """The token only hashed; the forging request's CR LF written as `crlf`, on its own request's line."""
    text = "\n".join(lines)
    assert TOKEN not in text and f"/p/<{HASHED}>" in text
    assert all("/x" in line for line in lines if "/admin/everything" in line)  # no line is the attacker's
    forged = next(line for line in lines if "/x" in line)
    assert f"/x{crlf}127.0.0.1" in forged


@pytest.fixture
def gunicorn(app_config, tmp_path):
    """gunicorn as `make run` starts it (app/local/run.py), its access log in a file."""
    port, log = free_port(), tmp_path / "access.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(gunicorn_command(str(port)), cwd=ROOT, env=worker_env(app_config),
                                   stdout=out, stderr=subprocess.DEVNULL)
    try:
        _wait_ready(port, process)
        yield port, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_ready(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "gunicorn stopped"
        try:
            if request(port, "/healthz") == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("gunicorn did not start")


def requests_logged(log) -> list[str]:
    return [line for line in log.read_text().splitlines() if "/healthz" not in line]  # not the start-up probes


def test_gunicorn_access_log_masks_link_tokens_and_escapes_control_characters(gunicorn):
    port, log = gunicorn
    assert request(port, f"/p/{TOKEN}") == 404  # an unknown token: its log line is masked all the same
    assert request(port, "/p/visit") == 404  # the token-free page is named as it is
    assert request(port, FORGING_PATH) == 404
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(requests_logged(log)) < 3:
        time.sleep(0.1)
    lines = requests_logged(log)
    assert len(lines) == 3 and all(line.startswith('127.0.0.1 "GET /') for line in lines), lines
    assert_clean(lines, crlf="\\x0d\\x0a")  # decoded by gunicorn, escaped by the app's logger
    written = "\n".join(lines)  # in any order: each thread logs once its answer is sent
    assert '"GET /x\\x0d\\x0a127.0.0.1 \\"GET /admin/everything\\" 200 0 1ms" 404' in written
    assert '"GET /p/visit" 404' in written


def test_werkzeug_dev_server_log_masks_link_tokens(app, caplog):
    server = make_server("127.0.0.1", 0, app, threaded=True)  # werkzeug's own request handler, as `flask run`
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            assert request(server.server_port, f"/p/{TOKEN}") == 404
            assert request(server.server_port, FORGING_PATH) == 404
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
    lines = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    assert len(lines) == 2 and all(line.startswith("127.0.0.1 - - [") for line in lines), lines
    assert_clean(lines, crlf="%0d%0a")  # werkzeug leaves it encoded (and escapes what it decodes)


def test_the_apps_own_log_escapes_what_it_is_given(app, capsys):
    from flask.logging import default_handler

    record = logging.getLogger("app.messaging.webhook_views").makeRecord(
        "app.messaging.webhook_views", logging.WARNING, __file__, 1, "refused %s for %s", (FORGING_PATH.replace(
            "%0d%0a", "\r\n"), f"/p/{TOKEN}"), None)
    default_handler.handle(record)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("[") and TOKEN not in lines[0] and "\\x0d\\x0a" in lines[0]
