"""Day close and the GSTR-1 export."""

from flask import Blueprint

bp = Blueprint("billing_reports", __name__)
