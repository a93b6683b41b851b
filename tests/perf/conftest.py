"""Query-count test set-up: the bench's statement counter on the app's engine (one listener for the run),
and a helper that counts what one request sends and compares two such counts."""

import re
from collections import Counter

import pytest

from bench.measure import SqlCounter, timed


@pytest.fixture(scope="session")
def counter(app) -> SqlCounter:
    return SqlCounter(app.extensions["db_engine"])


class Count:
    """The statements one request sent: how many and which (COMMITs are counted apart, as the bench does)."""

    def __init__(self, statements: list[str]):
        self.statements = statements

    @property
    def n(self) -> int:
        return len(self.statements)

    def __repr__(self) -> str:
        return str(self.n)


@pytest.fixture
def count(counter):
    """Make one request (`call`) and return its Count (and the response), checking its status."""
    def run(call, status: int = 200) -> tuple[Count, object]:
        _, response, kept = timed(counter, call, keep=True)
        assert response.status_code == status, response.get_data(as_text=True)[:2000]
        return Count([k["sql"] for k in kept]), response
    return run


def _shape(statement: str) -> str:
    """A statement on one line, short, its parameters and IN lists unnamed (so a diff shows what grew)."""
    shape = re.sub(r"__\[POSTCOMPILE_\w+\]|%\(\w+\)s", "?", statement)
    shape = re.sub(r"\(\?(::\w+)?(, \?(::\w+)?)*\)", "(...)", shape)
    return re.sub(r"\s+", " ", shape).strip()[:150]


def assert_flat(small: dict[str, Count], more: dict[str, Count]) -> None:
    """Every page's count with more data equals its count with less; otherwise the statements that differ."""
    grown = {page: (small[page].n, more[page].n) for page in small if small[page].n != more[page].n}
    if grown:
        lines = [f"{page}: {n} -> {m} statements" for page, (n, m) in grown.items()]
        for page in grown:
            extra = Counter(map(_shape, more[page].statements))
            extra.subtract(Counter(map(_shape, small[page].statements)))
            lines += [f"  {page}: {k:+d} x {s}" for s, k in extra.items() if k]
        pytest.fail("the count grows with the data:\n" + "\n".join(lines))
