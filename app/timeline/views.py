"""The unified patient timeline."""

from flask import Blueprint

bp = Blueprint("timeline", __name__)
