"""The Airflow plugin (``airflow.plugins`` entry point): the webhook receiver, mounted in the API server.

On Airflow 3 it adds a FastAPI app at ``/piriod`` (``POST /piriod/webhooks/{conn_id}``, see
:mod:`airflow_provider_piriod.webhooks.receiver`). Airflow 2.11 has no FastAPI plugins: there the plugin
registers nothing. Plugin apps are not behind Airflow's authentication: the signature is the only gate.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_piriod.compat import AirflowPlugin, airflow_v3


def _fastapi_apps() -> list[dict[str, Any]]:
    if not airflow_v3():
        return []
    from airflow_provider_piriod.webhooks.receiver import create_app

    return [{"app": create_app(), "url_prefix": "/piriod", "name": "Piriod webhooks"}]


class PiriodPlugin(AirflowPlugin):
    """Receives Piriod webhooks in the API server and records them as asset events."""

    name = "piriod"
    fastapi_apps = _fastapi_apps()
