"""The provider registers with Airflow: provider info, entry points, discovery, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest

import airflow_provider_piriod
from airflow_provider_piriod import get_provider_info

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def test_provider_info_is_valid_for_airflow():
    import airflow

    runtime_schema = json.loads((files(airflow) / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), runtime_schema)
    # the stricter provider.yaml schema describes conn-fields and ui-field-behaviour in detail
    yaml_schema = json.loads((files(airflow) / "provider.yaml.schema.json").read_text())
    jsonschema.validate(get_provider_info()["connection-types"], yaml_schema["properties"]["connection-types"])
    # and the piriod URI scheme under each name this Airflow line describes (3.x: both, 2.11: dataset-uris)
    uri_keys = [key for key in ("asset-uris", "dataset-uris") if key in yaml_schema["properties"]]
    assert uri_keys
    for key in uri_keys:
        jsonschema.validate(get_provider_info()[key], yaml_schema["properties"][key])


def test_the_piriod_uri_scheme_is_registered_for_assets_and_lineage():
    """Airflow resolves the piriod scheme's normalizer and OpenLineage converter from the provider info."""
    from airflow_provider_piriod.compat import airflow_v3
    from airflow_provider_piriod.lineage import convert_asset_to_openlineage
    from airflow_provider_piriod.lineage_uri import sanitize_uri

    info = get_provider_info()
    assert info["asset-uris"] == info["dataset-uris"]  # Airflow 3 reads the first, 2.11 the second
    if airflow_v3():
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        runtime = ProvidersManagerTaskRuntime()
        handlers, converters = runtime.asset_uri_handlers, runtime.asset_to_openlineage_converters
    else:
        from airflow.providers_manager import ProvidersManager

        manager = ProvidersManager()
        handlers = manager.dataset_uri_handlers  # noqa: AIR301 (Airflow 2.11's names)
        converters = manager.dataset_to_openlineage_converters  # noqa: AIR301
    assert handlers["piriod"] is sanitize_uri
    assert converters["piriod"] is convert_asset_to_openlineage


def test_connection_form_relabels_hides_and_declares_extras():
    (conn_type,) = get_provider_info()["connection-types"]
    behaviour = conn_type["ui-field-behaviour"]
    assert behaviour["relabeling"]["password"] == "API token"
    assert behaviour["relabeling"]["login"] == "Workspace"
    assert {"schema", "extra"} <= set(behaviour["hidden-fields"])
    assert "port" not in behaviour["hidden-fields"]  # a hidden port breaks the UI's Test button (sent as 0)
    assert {"test_mode", "timeout", "max_retries"} <= set(conn_type["conn-fields"])


def test_entry_points_are_registered():
    (provider,) = [
        ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_provider_piriod")
    ]
    assert provider.load() is get_provider_info
    (plugin,) = [ep for ep in entry_points(group="pytest11") if ep.name == "piriod_emulator"]
    assert plugin.value == "airflow_provider_piriod.testing.pytest_plugin"


def test_package_metadata_matches_provider_info():
    from importlib.metadata import version

    assert get_provider_info()["package-name"] == "airflow-provider-piriod"
    assert version("airflow-provider-piriod") == airflow_provider_piriod.__version__


@pytest.mark.parametrize(
    "module",
    ["airflow_provider_piriod", "airflow_provider_piriod.testing", "airflow_provider_piriod.testing.pytest_plugin"],
)
def test_modules_loaded_by_every_airflow_and_pytest_run_stay_light(module):
    code = (
        f"import sys, {module}; heavy = [m for m in ('airflow', 'requests', 'pydantic', 'uvicorn') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    "module", ["airflow_provider_piriod.operators.piriod", "airflow_provider_piriod.sensors.piriod"]
)
def test_dag_files_do_not_load_the_hook_models_or_transports_at_parse_time(module):
    """A DAG file imports operators and sensors; what only a running task needs, the task imports."""
    task_only = (
        "airflow_provider_piriod.hooks.piriod",
        "airflow_provider_piriod.models",
        "airflow_provider_piriod.transport",
        "airflow_provider_piriod.triggers.piriod",
        "airflow_provider_piriod.lineage",
        "airflow_provider_piriod.operators.ndjson",
    )
    code = f"import sys, {module}; print(','.join(m for m in {task_only!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1:] in ([], [""])


def test_providers_manager_discovers_the_hook():
    from airflow.providers_manager import ProvidersManager

    from airflow_provider_piriod.compat import airflow_v3

    manager = ProvidersManager()
    assert "airflow-provider-piriod" in manager.providers
    if airflow_v3():  # hooks moved to the task runtime's manager
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        hook_info = ProvidersManagerTaskRuntime().hooks["piriod"]
    else:
        hook_info = manager.hooks["piriod"]
    assert hook_info.hook_class_name == "airflow_provider_piriod.hooks.piriod.PiriodHook"
    assert hook_info.connection_id_attribute_name == "piriod_conn_id"
    assert manager.field_behaviours["piriod"]["relabeling"] == {
        "password": "API token",
        "login": "Workspace",
        "host": "API URL",
    }
    assert "extra__piriod__test_mode" in manager.connection_form_widgets
    assert any(
        t.trigger_class_name == "airflow_provider_piriod.triggers.piriod"  # the module, as Airflow lists it
        for t in manager.trigger
    )


def test_compat_resolves_every_name_and_rejects_unknown_ones():
    from airflow_provider_piriod import compat

    for name in compat.__all__:
        assert getattr(compat, name) is not None, name
    with pytest.raises(AttributeError):
        _ = compat.NoSuchThing


def _airflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AIRFLOW, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.cli
def test_airflow_cli_lists_the_provider_and_its_hook():
    providers = _airflow("providers", "list")
    assert providers.returncode == 0, providers.stderr
    assert "airflow-provider-piriod" in providers.stdout
    hooks = _airflow("providers", "hooks")
    assert hooks.returncode == 0, hooks.stderr
    assert "piriod" in hooks.stdout and "airflow_provider_piriod.hooks.piriod.PiriodHook" in hooks.stdout


@pytest.mark.cli
def test_airflow_connections_test_succeeds_against_the_emulator(piriod_emulator):
    result = _airflow("connections", "test", "piriod_default", env={"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Connection success!" in result.stdout
    assert piriod_emulator.token not in result.stdout + result.stderr
    assert [e["method"] for e in piriod_emulator.requests()] == ["GET"]


@pytest.mark.cli
def test_emulator_cli_prints_what_a_user_needs():
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("piriod-emulator")), "--port", "0", "--customers", "7"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(5)]
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()
    assert lines[0].startswith("Piriod emulator listening on http://127.0.0.1:")
    assert lines[1].split()[0] == "workspace:" and lines[2].split()[0] == "token:"
    export = lines[4].strip()
    assert export.startswith("export AIRFLOW_CONN_PIRIOD_DEFAULT='")
    conn = json.loads(export.split("=", 1)[1].strip("'"))
    assert conn["conn_type"] == "piriod" and conn["host"] == lines[0].split()[-1]


@pytest.mark.cli
@pytest.mark.airflow3  # make demo runs in the Airflow 3 environment
def test_make_demo_script_prints_the_customer_that_came_through_xcom():
    script = Path(__file__).parents[1] / "scripts" / "demo.py"
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Customer JSON pushed to XCom by task get_customer:" in result.stdout
    assert "XCom equals the emulator's record: yes" in result.stdout
    pushed = json.loads(result.stdout.split("by task get_customer:\n", 1)[1].split("\n\n", 1)[0])
    assert pushed["id"].startswith("cus_") and "sk_test_" not in result.stdout


def test_the_hook_describes_the_same_form_for_airflow_2_uis():
    from airflow_provider_piriod.hooks.piriod import PiriodHook

    (declared,) = get_provider_info()["connection-types"]
    behaviour = PiriodHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == declared["ui-field-behaviour"]["relabeling"]
    assert behaviour["hidden_fields"] == declared["ui-field-behaviour"]["hidden-fields"]
    pytest.importorskip("flask_appbuilder", reason="the Airflow 2 UI's form libraries")
    widgets = PiriodHook.get_connection_form_widgets()
    assert set(widgets) == set(declared["conn-fields"])
    assert widgets["test_mode"].field_class.__name__ == "BooleanField"
    assert widgets["max_retries"].field_class.__name__ == "IntegerField"
