"""Prescriptions."""

from flask import Blueprint

bp = Blueprint("prescriptions", __name__)
