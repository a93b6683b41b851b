"""GST profile and price list (admin, billing)."""

from flask import Blueprint

bp = Blueprint("billing_setup", __name__)
