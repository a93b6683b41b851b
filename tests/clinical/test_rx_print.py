# ruff: noqa: F811  (fixtures imported from other test modules are redefined as arguments, as pytest means)
"""The prescription as it prints: in every language it prints in, the PDF's page drawn by poppler shows the
dose, frequency and duration with their digits and punctuation, on a server with no fonts of its own and on
one with a "Noto Sans Devanagari" installed (tests/printed.py)."""

import pytest

from app.clinical import rx_text
from tests.clinical.test_prescriptions import add, consultation, doctor_browser, registered, rows, sign  # noqa: F401
from tests.printed import Page, require_tools, server_fonts  # noqa: F401
from tests.scheduling.conftest import doctor, setup, sign_in  # noqa: F401

# What the paper must read (a stretch of text at a time, without spaces) in each language the prescription prints
# in: the item's dose, frequency and duration, advice typed with a digit, and headings with "/" and "-".
READS = {
    "en": ("1tablet", "1-0-1(morning1,night1)", "5days", "Age/sex", "Rest3days."),
    "hi": ("1गोली/1tablet", "सुबह1,रात1/1-0-1(morning1,night1)", "5दिन/5days", "आयु/लिंग", "कब-कब/Howoften",
           "3दिनआरामकरें"),
}
ADVICE = {"en": "Rest 3 days.", "hi": "3 दिन आराम करें"}


@pytest.mark.parametrize("language", sorted(rx_text.LANGUAGES))
def test_the_paper_shows_every_digit_and_mark(language, server_fonts, desk, setup, register, doctor_browser,
                                              registered, sql, tmp_path):
    _, encounter = consultation(desk, setup, register, doctor_browser, full_name="Sunita Devi Sharma",
                                language=language)
    add(doctor_browser, encounter, dose="1 tab", frequency="1-0-1", duration="5 days")
    rx_id, _, _, _, version, *_ = rows(sql)[0]
    assert sign(doctor_browser, rx_id, version, language=language, advice=ADVICE[language]).status_code == 200
    page = Page(doctor_browser.client.get(f"/prescriptions/{rx_id}.pdf").get_data(), tmp_path)
    assert any(word == "Paracetamol" for word, _ in page.words)
    assert page.undrawn() == []
    read = page.read()
    assert [phrase for phrase in READS[language] if not any(phrase in text for text in read)] == [], read


def test_a_missing_tool_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="poppler-utils tesseract-ocr"):
        require_tools()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="poppler-utils tesseract-ocr"):
        require_tools()
