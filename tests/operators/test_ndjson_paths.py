"""Where write_ndjson puts a file: a relative path lands under the working directory on every Airflow line."""

from __future__ import annotations

import os

import pytest

from airflow_provider_piriod.operators.ndjson import write_ndjson


@pytest.mark.parametrize("relative", ["./a.ndjson", "b.ndjson", "sub/c.ndjson"])
def test_a_relative_output_path_is_written_under_the_working_directory(relative, tmp_path, monkeypatch):
    """The file lands in the cwd (not under /), and the returned path is that file's absolute path."""
    monkeypatch.chdir(tmp_path)
    expected = os.path.normpath(tmp_path / relative)
    path, count = write_ndjson(relative, [{"a": 1}])
    assert (path, count) == (expected, 1)
    assert (tmp_path / relative).read_text() == '{"a":1}\n'


def test_a_file_uri_naming_localhost_is_written_at_its_path(tmp_path, monkeypatch):
    """file://localhost/<path> is the local <path> (RFC 8089), not a folder named localhost in the cwd."""
    monkeypatch.chdir(tmp_path)
    path, _ = write_ndjson(f"file://localhost{tmp_path}/d.ndjson", [{"a": 1}])
    assert (tmp_path / "d.ndjson").exists() and not (tmp_path / "localhost").exists()
    assert path == f"file://{tmp_path}/d.ndjson"
