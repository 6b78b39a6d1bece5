"""The README's "test your own DAG" recipe passes as written, in a fresh pytest process of a user's project."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).parents[2] / "README.md").read_text()


def block(name: str, language: str) -> str:
    match = re.search(rf"<!-- readme-test: {name} -->\n```{language}\n(.*?)```", README, re.S)
    assert match, f"README block {name!r} not found"
    return match.group(1)


def user_environment(home: Path) -> dict[str, str]:
    """This machine's environment without any Airflow setting, and a HOME where ``~/airflow`` would show up."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PIRIOD_"))}
    return {**env, "HOME": str(home), "TMPDIR": str(home.parent / "tmp")}


def run_pytest(
    project: Path, home: Path, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    (home.parent / "tmp").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=project,
        env={**user_environment(home), **(extra or {})},
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project built from the README blocks: pytest.ini, dags/ and tests/."""
    root = tmp_path / "project"
    (root / "dags").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pytest.ini").write_text(block("dag-recipe-ini", "ini"))
    (root / "dags" / "customer_report.py").write_text(block("dag-recipe-dag", "python"))
    (root / "tests" / "test_customer_report.py").write_text(block("dag-recipe-test", "python"))
    (tmp_path / "home").mkdir()
    return root


def test_the_recipe_passes_in_a_throwaway_airflow_home_and_leaves_nothing_behind(project: Path):
    """The DAG runs under dag.test() against the emulator; no ~/airflow, and the throwaway home is removed."""
    home = project.parent / "home"
    result = run_pytest(project, home)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "1 passed" in result.stdout
    assert not (home / "airflow").exists()
    assert list((project.parent / "tmp").glob("piriod-airflow-home-*")) == []


def test_the_recipe_test_can_fail(project: Path):
    """A DAG that reads another connection id than the emulator's fails the recipe's test: it checks something."""
    dag = project / "dags" / "customer_report.py"
    dag.write_text(dag.read_text().replace('piriod_conn_id="billing_piriod"', 'piriod_conn_id="other_piriod"'))
    result = run_pytest(project, project.parent / "home")
    assert result.returncode == 1, result.stdout[-4000:] + result.stderr[-4000:]
    assert "1 failed" in result.stdout


def test_without_the_ini_option_the_fixture_says_what_to_add(project: Path):
    """No ``piriod_dags_folder``: the fixture fails with the option to set, before Airflow touches any database."""
    (project / "pytest.ini").write_text("[pytest]\n")
    home = project.parent / "home"
    result = run_pytest(project, home)
    assert result.returncode == 1
    assert "piriod_airflow needs the ini option piriod_dags_folder" in result.stdout
    assert not (home / "airflow" / "airflow.db").exists()


def production_connection(root: Path, host: str, token: str) -> tuple[Path, str]:
    """A "real" Airflow setup whose secrets backend serves ``billing_piriod`` with a production host and token."""
    real = root / "real_airflow_home"
    real.mkdir()
    (real / "conns.json").write_text(
        json.dumps({"billing_piriod": {"conn_type": "piriod", "host": host, "login": "acc_prod", "password": token}})
    )
    return real, json.dumps({"connections_file_path": str(real / "conns.json")})


@pytest.mark.parametrize("variant", ["config", "environment"])
def test_a_secrets_backend_of_the_real_airflow_is_never_asked(project: Path, variant: str):
    """AIRFLOW_CONFIG or AIRFLOW__SECRETS__* with a production connection: the DAG still talks to the emulator."""
    token = "tok_PRODUCTION_SECRET_0123456789"
    # port 9 on localhost refuses: a request to "production" fails the run, so the test can fail
    real, kwargs = production_connection(project.parent, "http://127.0.0.1:9", token)
    backend = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    extra = {"AIRFLOW_HOME": str(real), "AIRFLOW__CORE__LOAD_EXAMPLES": "True"}
    if variant == "config":
        (real / "airflow.cfg").write_text(f"[secrets]\nbackend = {backend}\nbackend_kwargs = {kwargs}\n")
        extra["AIRFLOW_CONFIG"] = str(real / "airflow.cfg")
    else:
        extra.update(
            AIRFLOW__SECRETS__BACKEND=backend,
            AIRFLOW__SECRETS__BACKEND_KWARGS=kwargs,
            AIRFLOW__SECRETS__BACKEND_KWARGS_CMD="echo {}",
        )
    result = run_pytest(project, project.parent / "home", extra=extra)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "1 passed" in result.stdout
    assert "AIRFLOW__SECRETS__BACKEND" in result.stdout or variant == "config"
    assert token not in result.stdout + result.stderr
    assert sorted(p.name for p in real.iterdir()) == sorted(
        ["conns.json"] + (["airflow.cfg"] if variant == "config" else [])
    )


@pytest.mark.parametrize("early_stop", ["usage error", "conftest import error"])
def test_the_throwaway_home_is_removed_when_pytest_stops_early(project: Path, early_stop: str):
    """pytest ends before configure (bad option, broken conftest): the throwaway home is still removed."""
    args = ("--no-such-option",) if early_stop == "usage error" else ()
    if early_stop == "conftest import error":
        (project / "conftest.py").write_text('raise ImportError("broken conftest")\n')
    result = run_pytest(project, project.parent / "home", *args)
    assert result.returncode != 0
    assert list((project.parent / "tmp").glob("piriod-airflow-home-*")) == []
