"""The one throttle and the one client address: an IPv6 client is its /64 in every throttled flow.

The patient link's and the prescription check's /64 tests sit beside their flows' other tests
(tests/messaging/test_visit.py, tests/clinical/test_prescriptions.py).
"""

import pytest

from app.security.client import client_address, client_network

SAME_64 = ("2001:db8:5:7::1", "2001:db8:5:7:ab:cd:ef:99")  # one subscriber's /64, two addresses in it
OTHER_64 = "2001:db8:5:8::1"


def at(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


@pytest.mark.parametrize(("remote", "address", "network"), [
    ("203.0.113.7", "203.0.113.7", "203.0.113.7"),
    ("2001:DB8:5:7:0:0:0:1", "2001:db8:5:7::1", "2001:db8:5:7::/64"),
    ("2001:db8:5:7:ab:cd:ef:99", "2001:db8:5:7:ab:cd:ef:99", "2001:db8:5:7::/64"),
    ("::ffff:203.0.113.7", "::ffff:cb00:7107", "203.0.113.7"),  # an IPv4 client seen through IPv6
    ("not an address", None, None),
])
def test_the_client_address_and_its_throttle_network(app, remote, address, network):
    with app.test_request_context(environ_base={"REMOTE_ADDR": remote}):
        assert (client_address(), client_network()) == (address, network)
    with app.app_context():
        assert (client_address(), client_network()) == (None, None)  # a job has no client


def test_sign_in_failures_from_one_ipv6_64_share_one_bucket(new_browser, factory, clinic):
    person = factory.person(clinic)
    guesser = new_browser()
    for _ in range(10):
        response = guesser.post("/auth/login", {"email": person.email, "password": "guess guess guess"},
                                page="/auth/login", **at(SAME_64[0]))
        assert response.status_code == 422
    neighbour = new_browser().post("/auth/login", {"email": person.email, "password": person.password},
                                   page="/auth/login", **at(SAME_64[1]))
    assert neighbour.status_code == 429  # the next address in the /64 is the same client
    elsewhere = new_browser().post("/auth/login", {"email": person.email, "password": person.password},
                                   page="/auth/login", **at(OTHER_64))
    assert elsewhere.status_code == 303  # another /64 is someone else


def test_code_failures_from_one_ipv6_64_share_one_bucket(new_browser, factory, clinic):
    """20 wrong codes from a /64 (4 accounts' worth each, under the per-account limit) stop the whole /64."""
    def signed_in_password(person, address):
        browser = new_browser()
        browser.client.environ_base["REMOTE_ADDR"] = address
        assert browser.sign_in_password(person).status_code == 303
        browser.get("/auth/mfa")
        return browser

    for n in range(5):
        browser = signed_in_password(factory.person(clinic, name=f"Guessed {n}"), SAME_64[n % 2])
        for _ in range(4):
            assert browser.post("/auth/mfa", {"code": "000000"}).status_code == 422
    person = factory.person(clinic, name="Next Door")
    assert signed_in_password(person, SAME_64[1]).post("/auth/mfa", {"code": person.code()}).status_code == 429
    other = factory.person(clinic, name="Elsewhere")
    assert signed_in_password(other, OTHER_64).post("/auth/mfa", {"code": other.code()}).status_code == 303
