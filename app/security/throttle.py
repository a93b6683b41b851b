"""Failure throttles: the one mechanism behind every limit on guesses (passwords, codes, patient links,
prescription checks).

A throttle counts failures already recorded as rows (sign-in events, link attempts, audit records) in
PostgreSQL, so it holds across app processes and fails closed: if the count cannot be read, the request
fails with it. A client is counted by client_network(), so an IPv6 client is its /64 wherever it is
counted.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import ColumnElement, cast, func, select
from sqlalchemy.dialects.postgresql import CIDR
from sqlalchemy.orm import Session

from app.db import utcnow
from app.security.client import client_network


@dataclass(frozen=True)
class Limit:
    failures: int
    window: timedelta


def serialise(db: Session, key: str) -> None:
    """Hold `key`'s lock until commit, so concurrent attempts on one bucket are counted one by one."""
    db.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))


def reached(db: Session, at, where: Iterable[ColumnElement[bool]], limits: Iterable[Limit]) -> bool:
    """Whether the failures matching `where` (timed by column `at`) reach any limit within its window."""
    where, now = list(where), utcnow()
    return any(db.scalar(select(func.count()).where(*where, at > now - limit.window)) >= limit.failures
               for limit in limits)


def from_client(column) -> ColumnElement[bool]:
    """SQL: the address in `column` (inet) is the client's, an IPv6 one anywhere in its /64."""
    network = client_network()
    return column.is_(None) if network is None else column.op("<<=")(cast(network, CIDR))
