"""The emulator command and `make help` say what a new user needs, in plain words."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_piriod.testing.server import bind_loopback

ROOT = Path(__file__).parents[2]


@pytest.mark.cli
def test_a_busy_port_is_reported_in_one_line_with_what_to_do():
    """No OSError traceback: the port, and how to pick another (`make emulator PORT=...`), on stderr; exit 2."""
    with bind_loopback(0) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "airflow_provider_piriod.testing.cli", "--port", str(port), "--customers", "1"],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "make emulator PORT=" in result.stderr


def run_cli(*args: str, **options) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_piriod.testing.cli", *args, "--customers", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        **options,
    )


@pytest.mark.cli
@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_a_usage_error(port: str):
    """--port outside 0..65535: argparse's one-line usage error (exit 2), no OverflowError traceback."""
    result = run_cli("--port", port)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "is not a port: use 1 to 65535, or 0 for any free port" in result.stderr


def test_a_privileged_port_is_reported_in_one_line(monkeypatch, capsys):
    """EACCES from bind (a port below 1024 as an ordinary user): one line and exit 2, no traceback.

    The bind is replaced because these tests may run as root, where every port can be bound.
    """
    import errno

    from airflow_provider_piriod.testing import cli, server

    def refuse(port: int):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(server, "bind_loopback", refuse)
    assert cli.main(["--port", "80", "--customers", "1"]) == 2
    assert "port 80 on 127.0.0.1 needs privileges this user does not have" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_help_lists_every_documented_target_with_the_port_filled_in():
    """Targets with digits in their names are listed, and `$(PORT)` shows its value."""
    result = subprocess.run(
        ["make", "--no-print-directory", "help", "PORT=9123"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    targets = dict(line.split("\t", 1) for line in result.stdout.splitlines())
    documented = {
        line.split(":", 1)[0]
        for line in (ROOT / "Makefile").read_text().splitlines()
        if re.match(r"^[\w-]+:.*## ", line)
    }
    assert {"install-airflow2", "test-airflow2", "e2e"} <= set(targets)
    assert set(targets) == documented
    assert "127.0.0.1:9123" in targets["emulator"] and "$(PORT)" not in result.stdout
