"""The code's shape: a route's file follows from its endpoint name, and imports flow one way down."""

import shutil
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


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """The layer contract of pyproject.toml, checked on the tree at `root`."""
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})


def test_imports_flow_one_way_down():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    for name in ("app", "jobs"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    kernel = tmp_path / "app" / "htmx.py"
    kernel.write_text(kernel.read_text() + "\nfrom app.billing.views import bp  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "app.htmx is not allowed to import app.billing.views" in result.stdout

    kernel.write_text(kernel.read_text().replace("from app.billing.views import bp", "import jobs.worker"))
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "app.htmx -> jobs.worker" in result.stdout.split("app is not allowed to import jobs:")[1]


def test_a_view_importing_another_view_breaks_the_contract(tmp_path):
    for name in ("app", "jobs"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    view = tmp_path / "app" / "billing" / "views.py"
    view.write_text(view.read_text() + "\nfrom app.billing.payment_views import bp as payments  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1
    assert "app.billing.views is not allowed to import app.billing.payment_views" in result.stdout


def test_every_module_of_app_has_a_layer():
    """A new module joins a layer of the contract (one left out would be checked by nobody)."""
    import tomllib

    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    named = {name.strip() for layer in contract["layers"] for name in layer.replace("|", ":").split(":")}
    modules = {".".join(path.relative_to(ROOT).with_suffix("").parts)
               for path in (ROOT / "app").rglob("*.py") if path.name != "__init__.py"}
    left_out = {m for m in modules if not any(m == n or m.startswith(n + ".") for n in named)}
    assert left_out == set()
