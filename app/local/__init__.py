"""Embedded PostgreSQL and Redis for a machine that has neither (`make run`, `make test`)."""
