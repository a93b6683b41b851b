"""Payments, refunds and receipts."""

from flask import Blueprint

bp = Blueprint("payments", __name__)
