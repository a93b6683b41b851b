"""The code's shape: a route's file follows from its endpoint name, and imports flow one way down."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def expected_module(endpoint: str) -> str:
    """`pkg.view` lives in app/pkg/views.py; `pkg_part.view` in app/pkg/part_views.py."""
    blueprint = endpoint.split(".", 1)[0]
    package, _, part = blueprint.partition("_")
    return f"app.{package}.{part}_views" if part else f"app.{package}.views"


def test_every_endpoint_is_in_the_file_its_name_says(app):
    misplaced = {endpoint: view.__module__ for endpoint, view in app.view_functions.items()
                 if endpoint != "static" and view.__module__ != expected_module(endpoint)}
    assert misplaced == {}
    assert len(app.view_functions) > 100


def test_every_views_module_is_a_blueprint_of_its_own_name(app):
    modules = {view.__module__ for endpoint, view in app.view_functions.items() if endpoint != "static"}
    on_disk = {".".join(path.relative_to(ROOT).with_suffix("").parts)
               for path in (ROOT / "app").glob("*/*views.py")}
    assert on_disk == modules
