"""Helpers for registry tests: a signed-in receptionist and a way to register patients over HTTP."""

import itertools
import re

import pytest

from app.auth.policy import Role

_phones = itertools.count(9_800_000_001)


def patient_form(**overrides) -> dict:
    values = {"full_name": "Sunita Devi Sharma", "sex": "F", "dob": "1980-05-04", "phone": str(next(_phones)),
              "state_code": "29", "language": "hi", "consent_treatment": "y"}
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


@pytest.fixture
def reception(factory, clinic):
    return factory.person(clinic, Role.RECEPTION, name="Ravi Reception")


@pytest.fixture
def desk(browser, reception):
    """A browser signed in as the clinic's receptionist."""
    browser.sign_in(reception)
    return browser


@pytest.fixture
def register(desk):
    """Register a patient over HTTP; returns the patient's URL."""
    def go(**overrides) -> str:
        response = desk.post("/patients/new", patient_form(**overrides), page="/patients/new")
        assert response.status_code == 303, response.get_data(as_text=True)[:2000]
        return response.headers["Location"]
    return go


def search(browser, query: str, htmx: bool = True) -> str:
    headers = {"HX-Request": "true"} if htmx else {}
    browser.get("/patients/")
    response = browser.post("/patients/search", {"q": query}, headers=headers)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def patient_id(url: str) -> str:
    return re.search(r"/patients/([0-9a-f-]{36})", url).group(1)
