"""Reminder test set-up shared by the outbox and worker tests: a doctor bookable round the clock, and the
local fake of Twilio that the app's Twilio client is pointed at."""

import pytest

from app.auth.policy import Role
from tests.fakes.twilio import FakeTwilio
from tests.messaging.booked import round_the_clock


@pytest.fixture
def doctor(factory, clinic):
    return factory.person(clinic, Role.DOCTOR, name="Dr Meera Rao")


@pytest.fixture
def ready(sql, clinic, doctor):
    return round_the_clock(sql, clinic, doctor)


@pytest.fixture
def fake(app, monkeypatch):
    with FakeTwilio() as server:
        monkeypatch.setitem(app.config, "TWILIO_API_BASE", server.url)
        yield server
