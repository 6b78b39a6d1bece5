"""
``make demo``: run the customer lookup example DAG with ``airflow dags test`` against a local
Piriod emulator, then print the customer JSON that came through XCom, read back from Airflow's
metadata database.

Everything lives in a temporary AIRFLOW_HOME that is removed afterwards; the emulator listens on
a free loopback port and is stopped on the way out, whatever happens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from airflow_provider_piriod.testing import PiriodEmulator

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "example_piriod_customer_lookup"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
STEP_TIMEOUT = 300


def step(title: str, command: list[str], env: dict[str, str]) -> None:
    """Run one Airflow command; on failure show its output and stop."""
    print(f"==> {title}", flush=True)
    started = time.monotonic()
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=STEP_TIMEOUT, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        print(result.stdout[-6000:], result.stderr[-6000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"demo failed: {' '.join(command[:3])} exited with {result.returncode}")
    print(f"    done in {time.monotonic() - started:.1f} s", flush=True)


def read_return_values(dag_id: str) -> dict[str, object]:
    """The return_value XComs of the DAG's latest run, straight from the metadata database."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc())).first()
        rows = session.execute(
            select(XComModel.task_id, XComModel.value).where(
                XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.key == "return_value"
            )
        ).all()
        print(f"    run {run.run_id}: {run.state}")
    return dict(rows)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="piriod-demo-") as home, PiriodEmulator(customers=200, seed=0) as emulator:
        print(f"==> Piriod emulator on {emulator.url} (workspace {emulator.workspace})")
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            **emulator.connection_env(),
        }
        os.environ.update(env)  # for reading XComs from this process below
        customer = next(c for c in emulator.customers() if c["email"])
        step("airflow db migrate", [AIRFLOW, "db", "migrate"], env)
        step(
            f"airflow dags test {DAG_ID} (customer_id={customer['id']})",
            [AIRFLOW, "dags", "test", DAG_ID, "-c", json.dumps({"customer_id": customer["id"]})],
            env,
        )
        print("==> reading XCom back from Airflow's metadata database")
        values = read_return_values(DAG_ID)
        pushed = values.get("get_customer")
        print("\nCustomer JSON pushed to XCom by task get_customer:")
        print(json.dumps(pushed, indent=2, ensure_ascii=False))
        print(f"\nDownstream task welcome_message returned: {values.get('welcome_message')!r}")
        same = pushed == customer
        print(f"\nXCom equals the emulator's record: {'yes' if same else 'NO'}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
