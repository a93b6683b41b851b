"""Liveness and readiness probes."""

from app import create_app


def test_healthz(app):
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_readyz_checks_database_and_redis(app):
    response = app.test_client().get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_names_what_is_down(app_config):
    broken = create_app({**app_config, "REDIS_URL": "redis://127.0.0.1:1/0"})
    try:
        response = broken.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["checks"] == {"database": "ok", "redis": "unavailable"}
    finally:
        broken.extensions["db_engine"].dispose()
