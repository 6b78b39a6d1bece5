"""Apache Airflow provider for the Piriod billing API.

This module is imported by Airflow's providers manager on every ``import airflow``; it must stay
import-light (no Airflow, no requests, no pydantic).
"""

from __future__ import annotations

__version__ = "0.1.0"

PACKAGE_NAME = "airflow-provider-piriod"
CONN_TYPE = "piriod"
HOOK_CLASS = "airflow_provider_piriod.hooks.piriod.PiriodHook"
# piriod://<API host>/<workspace>/<resource>: the lineage name of a read (see airflow_provider_piriod.lineage_uri)
ASSET_URIS = [
    {
        "schemes": ["piriod"],
        "handler": "airflow_provider_piriod.lineage_uri.sanitize_uri",
        "to_openlineage_converter": "airflow_provider_piriod.lineage.convert_asset_to_openlineage",
    }
]


def get_provider_info() -> dict:
    """Describe the provider to Airflow: the ``piriod`` connection type, its form and the hook module."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "Piriod",
        "description": "Piriod billing API: customers, invoices, payments and every other resource to XCom or "
        "NDJSON, waiting on their status, and a local emulator.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Piriod",
                "external-doc-url": "https://docs.piriod.com/api-reference",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Piriod", "python-modules": ["airflow_provider_piriod.hooks.piriod"]}],
        "operators": [{"integration-name": "Piriod", "python-modules": ["airflow_provider_piriod.operators.piriod"]}],
        "sensors": [{"integration-name": "Piriod", "python-modules": ["airflow_provider_piriod.sensors.piriod"]}],
        "triggers": [{"integration-name": "Piriod", "python-modules": ["airflow_provider_piriod.triggers.piriod"]}],
        "asset-uris": ASSET_URIS,
        "dataset-uris": ASSET_URIS,  # the name Airflow 2.11 reads
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": HOOK_CLASS,
                "hook-name": "Piriod",
                "ui-field-behaviour": {
                    # port stays visible: Airflow 3.3's UI sends a hidden port as 0, which then differs
                    # from the saved connection and makes the Test button fail with 400
                    "hidden-fields": ["schema", "extra"],
                    "relabeling": {"password": "API token", "login": "Workspace", "host": "API URL"},
                    "placeholders": {
                        "port": "443 (or give it in the API URL)",
                        "login": "acc_01H8XYZ123ABC",
                        "host": "https://api.piriod.com (leave empty for the default)",
                    },
                },
                "conn-fields": {
                    "test_mode": {
                        "label": "Test mode",
                        "description": "Send x-piriod-test-mode: true and see only test-mode data.",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "description": "Deadline for each request, connect and read included.",
                        "schema": {"type": ["number", "null"], "default": 30, "minimum": 0},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries on connection errors, timeouts and 5xx answers.",
                        "schema": {"type": ["integer", "null"], "default": 5, "minimum": 0},
                    },
                    "rate_limit_wait": {
                        "label": "Rate-limit wait (seconds)",
                        "description": "Seconds a call waits out 429 answers, none getting through, before failing.",
                        "schema": {"type": ["number", "null"], "default": 600, "minimum": 0},
                    },
                    "max_response_bytes": {
                        "label": "Max response size (bytes)",
                        "description": "Larger answers are refused instead of read into memory.",
                        "schema": {"type": ["integer", "null"], "default": 16777216, "minimum": 1024},
                    },
                    "allow_insecure_http": {
                        "label": "Allow plain http",
                        "description": "Permit an http:// API URL on a non-loopback host (the token goes unencrypted).",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                    "warn_unknown_filters": {
                        "label": "Warn about unknown filters",
                        "description": "Log a warning for a filter Piriod does not document, or a list without __in.",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "read_only": {
                        "label": "Read only",
                        "description": "Refuse every write (create, update, action, archive) before any request.",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                    "webhook_secret": {
                        "label": "Webhook secret",
                        "description": "The secret Piriod shows for the webhook (whsecret_...): turns on the receiver.",
                        "schema": {"type": ["string", "null"], "default": ""},
                    },
                    "allow_unsigned_webhooks": {
                        "label": "Allow unsigned webhooks",
                        "description": "Accept deliveries without a signature from loopback clients (tests only).",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                },
            }
        ],
    }
