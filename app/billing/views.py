"""Billing documents: drafts, issue, the document page, credit notes."""

from flask import Blueprint

bp = Blueprint("billing", __name__)
