"""Amounts in words, Indian numbering (gst.md §4.4)."""

from decimal import Decimal as D

import pytest

from app.billing.words import amount_in_words, number_in_words


@pytest.mark.parametrize(
    ("amount", "words"),
    [
        ("0", "Rupees Zero Only"),
        ("0.00", "Rupees Zero Only"),
        ("0.01", "One Paisa Only"),
        ("0.50", "Fifty Paise Only"),
        ("0.99", "Ninety-Nine Paise Only"),
        ("1", "Rupees One Only"),
        ("1.01", "Rupees One and One Paisa Only"),
        ("17", "Rupees Seventeen Only"),
        ("101", "Rupees One Hundred One Only"),
        ("1181", "Rupees One Thousand One Hundred Eighty-One Only"),
        ("100000", "Rupees One Lakh Only"),
        ("118000", "Rupees One Lakh Eighteen Thousand Only"),
        ("123456.70", "Rupees One Lakh Twenty-Three Thousand Four Hundred Fifty-Six and Seventy Paise Only"),
        ("1234567", "Rupees Twelve Lakh Thirty-Four Thousand Five Hundred Sixty-Seven Only"),
        ("10000000", "Rupees One Crore Only"),
        ("10000001.10", "Rupees One Crore One and Ten Paise Only"),
        (
            "999999999.99",
            "Rupees Ninety-Nine Crore Ninety-Nine Lakh Ninety-Nine Thousand Nine Hundred Ninety-Nine "
            "and Ninety-Nine Paise Only",
        ),
        ("1000000000", "Rupees One Hundred Crore Only"),
        ("1000000000000", "Rupees One Lakh Crore Only"),  # past num2words' en_IN limit of 10^10
    ],
)
def test_amount_in_words(amount, words):
    assert amount_in_words(D(amount)) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [(0, "Zero"), (19, "Nineteen"), (20, "Twenty"), (99, "Ninety-Nine"), (100, "One Hundred"),
     (1000, "One Thousand"), (99999, "Ninety-Nine Thousand Nine Hundred Ninety-Nine"), (100001, "One Lakh One")],
)
def test_number_in_words(n, words):
    assert number_in_words(n) == words


@pytest.mark.parametrize("amount", [D("-1"), D("0.005"), D("1.999"), 1.5, 100, "100"])
def test_refuses_what_is_not_whole_non_negative_paise(amount):
    with pytest.raises(ValueError, match="whole paise"):
        amount_in_words(amount)
