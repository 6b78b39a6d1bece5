"""On Airflow 3, importing and using the provider emits no deprecation warnings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = r"""
import json, warnings
import airflow  # Airflow sets up its own warning handling first
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from airflow_provider_piriod import compat
    for name in compat.__all__:
        getattr(compat, name)
    from airflow_provider_piriod.hooks.piriod import PiriodAsyncHook, PiriodHook
    from airflow_provider_piriod.operators.piriod import PiriodCustomerOperator
    from airflow_provider_piriod.sensors.piriod import PiriodCustomerSensor
    from airflow_provider_piriod.triggers.piriod import PiriodCustomerTrigger
    from airflow_provider_piriod.testing.server import PiriodEmulator
    from airflow_provider_piriod.compat import DAG
    with DAG(dag_id="warnings_probe", schedule=None):
        PiriodCustomerOperator(task_id="op", filters={}, output_path="file:///tmp/x.ndjson")
        PiriodCustomerSensor(task_id="sensor", customer_id="cus_1", target_status="active", deferrable=True)
    PiriodCustomerTrigger(customer_id="cus_1", deadline=0).serialize()
    PiriodHook(), PiriodAsyncHook()
    with PiriodEmulator(customers=5) as emulator:
        import os
        os.environ.update(emulator.connection_env())
        PiriodHook().get_customer(emulator.customers()[0]["id"])
deprecations = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
                if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))]
print(json.dumps(deprecations))
"""


@pytest.mark.airflow3
def test_importing_and_using_the_provider_warns_of_nothing_deprecated():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
