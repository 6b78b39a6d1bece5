"""Write Piriod objects as NDJSON to any ObjectStoragePath, all or nothing; read records from one."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable
from typing import Any

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.compat import ObjectStoragePath

#: ``scheme://`` (or ``file:``) at the start of an output path; without one, the path is a local file
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|file:", re.IGNORECASE)
_LOCALHOST_FILE = re.compile(r"file://localhost/", re.IGNORECASE)


def resolve_output_path(output_path: Any) -> str:
    """
    Where ``output_path`` (a string or an ObjectStoragePath) points, spelled one way for writing and lineage:
    a local path made absolute against the working directory (Airflow 2.11 would resolve it against ``/``),
    ``file://localhost/p`` as ``file:///p`` (the local ``/p``, not a folder named localhost); a URL as given.
    """
    text = str(output_path)
    if not _URL_START.match(text):
        return os.path.abspath(text)
    if _LOCALHOST_FILE.match(text):
        return "file:///" + text[len("file://localhost/") :]
    return text


def write_ndjson(output_path: str, objects: Iterable[dict[str, Any]]) -> tuple[str, int]:
    """
    Stream ``objects`` to a temporary name beside ``output_path``, then move it into place.

    Each line is :func:`jsoncodec.dumps_line` (exact money, valid UTF-8). Returns the final path and
    the number of lines; on any failure the temporary file is removed and an earlier file stays as it was.
    """
    final = ObjectStoragePath(resolve_output_path(output_path))
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.parent / f".{final.name}.{uuid.uuid4().hex}.partial"
    count = 0
    try:
        with partial.open("wb") as stream:
            for item in objects:
                stream.write(jsoncodec.dumps_line(item))
                count += 1
        partial.replace(final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return str(final), count


def read_ndjson(uri: str) -> list[Any]:
    """The JSON values of an NDJSON file at any ObjectStoragePath URI, one per non-blank line, money exact."""
    from airflow_provider_piriod.exceptions import PiriodInputError

    values = []
    with ObjectStoragePath(resolve_output_path(uri)).open("rb") as stream:
        text = stream.read()  # the records are held in memory anyway; 2.11's file objects cannot be iterated
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            values.append(jsoncodec.loads(line))
        except ValueError as exc:
            raise PiriodInputError(f"{uri}: line {number} is not JSON ({type(exc).__name__})") from None
    return values
