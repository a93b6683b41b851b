"""Registry test helpers (registration fixtures live in tests/conftest.py)."""


def search(browser, query: str, htmx: bool = True) -> str:
    """POST a search as the search box does; returns the HTML."""
    headers = {"HX-Request": "true"} if htmx else {}
    browser.get("/patients/")
    response = browser.post("/patients/search", {"q": query}, headers=headers)
    assert response.status_code == 200
    return response.get_data(as_text=True)
