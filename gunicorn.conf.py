"""gunicorn's settings beside its command line (`gunicorn wsgi:app` reads this file from the working directory)."""

# The access log's values cleaned: patient-link tokens masked, control characters escaped (app/security/logs.py).
logger_class = "app.security.logs.AccessLogger"
# The path only: query strings may carry what a user searched for.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(M)sms'
