"""Document PDFs: status, download, retry."""

from flask import Blueprint

bp = Blueprint("bill_pdf", __name__)
