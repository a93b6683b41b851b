"""Allergies, problems and vitals."""

from flask import Blueprint

bp = Blueprint("chart", __name__)
