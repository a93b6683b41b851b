"""The processes of a local run (`make run`, the load bench): each in a session of its own, so stopping one
stops its children too, and background ones (a worker, the timer) started again when they die."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLD_STOP = 10  # seconds for a worker to kill its work-horse and exit after the second SIGTERM


class Supervisor:
    """Start the processes and keep the background ones up: a worker or the timer that dies is started again
    (after RESTART_AFTER seconds); only the web server ending ends the run."""

    BACKGROUND = ("worker", "timer")
    RESTART_AFTER = 2.0

    def __init__(self, commands: dict[str, list[str]], env: dict | None = None):
        self.commands, self.env = commands, env
        self.children: dict[str, subprocess.Popen] = {}
        self.died_at: dict[str, float] = {}

    def start(self, name: str | None = None) -> None:
        for each in [name] if name else self.commands:
            # a session of its own: stopping it reaches its children too (an RQ work-horse)
            self.children[each] = subprocess.Popen(self.commands[each], cwd=ROOT, env=self.env,  # noqa: S603
                                                   start_new_session=True)

    def check(self) -> bool:
        """Start again a background process that has ended; False once the web server has ended."""
        for name, child in self.children.items():
            if child.poll() is None:
                continue
            if name not in self.BACKGROUND:
                return False
            died = self.died_at.setdefault(name, time.monotonic())
            if time.monotonic() - died >= self.RESTART_AFTER:
                print(f"the {name} stopped (exit {child.returncode}); starting it again", file=sys.stderr)
                del self.died_at[name]
                self.start(name)
        return True

    def stop(self, timeout: float = 15) -> None:
        stop_groups(list(self.children.values()), timeout)


def stop_groups(children: list[subprocess.Popen], timeout: float) -> None:
    """Stop processes started with start_new_session, and what they started: SIGTERM each group (an RQ worker
    lets its work-horse finish the job), a second SIGTERM to what is still running after `timeout` (a worker's
    cold shutdown: it kills its work-horse, which runs in a process group of its own, and exits), then SIGKILL
    to whatever of the groups is left."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    _wait(children, timeout)
    for child in children:
        if child.poll() is None:
            _signal_group(child, signal.SIGTERM)
    _wait(children, COLD_STOP)
    for child in children:
        _signal_group(child, signal.SIGKILL)
        child.wait()


def _wait(children: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=max(0.1, deadline - time.monotonic()))


def _signal_group(child: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)
