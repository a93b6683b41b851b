"""What the load test does with a wrong answer: it is counted as an error and kept for a look, even in a fresh
clone (no bench/results/ yet); an htmx request sent to sign in (204 and HX-Redirect) is no "nothing changed"."""

import asyncio
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import load


class Answers(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/signed-out"):
            self.send_response(204)
            self.send_header("HX-Redirect", "/auth/login")
            self.end_headers()
            return
        body = b"<html><body><h1>Internal Server Error</h1></body></html>"
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_wrong_answer_is_kept_even_before_bench_results_exists(server, tmp_path, monkeypatch):
    results = tmp_path / "fresh-clone" / "bench" / "results"
    monkeypatch.setattr(load, "RESULTS_DIR", results)

    async def go():
        user = load.User(server, "desk@example.in", "", "", uuid.uuid4(), "desk")
        await user.open()
        run = load.Run(asyncio.get_running_loop())
        try:
            await run.timed("patient page", run.loop.time(), user, "GET", "/patients/x")
            await run.timed("board poll", run.loop.time(), user, "GET", "/signed-out/poll")
        finally:
            await user.close()
        return run

    run = asyncio.run(go())
    assert [s.ok for s in run.samples] == [False, False]
    assert [(f["status"], f["sent to"]) for f in run.failures] == [(500, ""), (204, "/auth/login")]
    assert "Internal Server Error" in (results / "failure-1.html").read_text()
