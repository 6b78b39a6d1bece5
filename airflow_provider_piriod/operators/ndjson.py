"""Write Piriod objects as NDJSON to any ObjectStoragePath, all or nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from airflow_provider_piriod import jsoncodec
from airflow_provider_piriod.compat import ObjectStoragePath


def write_ndjson(output_path: str, objects: Iterable[dict[str, Any]]) -> tuple[str, int]:
    """
    Stream ``objects`` to a temporary name beside ``output_path``, then move it into place.

    Each line is :func:`jsoncodec.dumps_line` (exact money, valid UTF-8). Returns the final path and
    the number of lines; on any failure the temporary file is removed and an earlier file stays as it was.
    """
    final = ObjectStoragePath(output_path)
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
