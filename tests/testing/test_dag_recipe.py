"""The README's "test your own DAG" recipe passes as written, in a fresh pytest process of a user's project."""

from __future__ import annotations

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


def run_pytest(project: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    (home.parent / "tmp").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=project,
        env=user_environment(home),
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
