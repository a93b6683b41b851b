"""Consultations: encounters, SOAP notes, diagnoses, follow-up, signing, addenda, break-the-glass."""

from flask import Blueprint

bp = Blueprint("clinical", __name__)
