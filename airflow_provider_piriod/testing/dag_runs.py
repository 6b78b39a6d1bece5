"""Run a DAG of your dags folder under ``dag.test()`` in a throwaway Airflow home: :class:`AirflowForTests`.

The pytest plugin sets ``AIRFLOW_HOME``, the SQLite database and ``DAGS_FOLDER`` before Airflow is
first imported (Airflow reads them once, at import); this module creates the database and runs
DAGs in it, the same way on Airflow 2.11 and 3.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

#: set by the pytest plugin to the throwaway home it created; nothing else may be reset
HOME_VARIABLE = "PIRIOD_TESTS_AIRFLOW_HOME"


@dataclass(frozen=True)
class DagTestResult:
    """What a ``dag.test()`` run left in the metadata database: its state, task states and return values."""

    dag_id: str
    run_id: str
    state: str
    #: ``{"task_id": state}``; a mapped task's instances as ``"task_id[0]"``, ``"task_id[1]"``, ...
    task_states: dict[str, str]
    #: ``{(task_id, map_index): value}`` of every ``return_value`` XCom (``map_index`` is -1 when unmapped)
    return_values: dict[tuple[str, int], Any] = field(repr=False)

    def xcom(self, task_id: str, map_index: int = -1) -> Any:
        """The value ``task_id`` returned (pushed as ``return_value``); KeyError when it pushed none."""
        return self.return_values[(task_id, map_index)]

    def mapped_xcoms(self, task_id: str) -> list[Any]:
        """The values every mapped instance of ``task_id`` returned, in map index order."""
        return [value for (task, index), value in sorted(self.return_values.items()) if task == task_id and index >= 0]


class AirflowForTests:
    """The throwaway Airflow of one pytest run: its dags folder, a fresh database, and ``test_dag``."""

    def __init__(self, home: Path, dags_folder: Path) -> None:
        self.home = home
        self.dags_folder = dags_folder

    def reset_database(self) -> None:
        """Create (or recreate) the SQLite metadata database in the throwaway home, and nowhere else."""
        from airflow import settings
        from airflow.utils import db

        if str(self.home) not in str(settings.SQL_ALCHEMY_CONN):
            raise RuntimeError(
                f"refusing to reset {settings.SQL_ALCHEMY_CONN!r}: it is not in the throwaway home {self.home}"
            )
        db.resetdb()

    def dag(self, dag_id: str) -> Any:
        """``dag_id`` parsed from the dags folder as the dag processor parses it; an import error fails loudly."""
        bag = _dag_bag(self.dags_folder)
        if bag.import_errors:
            problems = "\n".join(f"{path}: {error}" for path, error in bag.import_errors.items())
            raise AssertionError(f"DAG files in {self.dags_folder} failed to import:\n{problems}")
        dag = bag.dags.get(dag_id)
        if dag is None:
            raise AssertionError(f"no DAG {dag_id!r} in {self.dags_folder}; found {sorted(bag.dags)}")
        return dag

    def test_dag(self, dag_id: str, *, conf: dict[str, Any] | None = None, logical_date: datetime | None = None):
        """Run ``dag_id`` with ``dag.test()`` (tasks in this process) and return what the run left behind."""
        from airflow_provider_piriod.compat import airflow_v3

        kwargs: dict[str, Any] = {"run_conf": conf}
        if logical_date is not None:
            kwargs["logical_date" if airflow_v3() else "execution_date"] = logical_date
        dag_run = self.dag(dag_id).test(**kwargs)
        return DagTestResult(
            dag_id=dag_id,
            run_id=dag_run.run_id,
            state=str(dag_run.state),
            task_states=_task_states(dag_id, dag_run.run_id),
            return_values=_return_values(dag_id, dag_run.run_id),
        )


def home_from_environment() -> Path | None:
    """The throwaway home the plugin created for this process, if it did."""
    home = os.environ.get(HOME_VARIABLE)
    return Path(home) if home else None


def _dag_bag(folder: Path) -> Any:
    from airflow_provider_piriod.compat import airflow_v3

    if airflow_v3():
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=str(folder))
    from airflow.models import dagbag  # Airflow 2.11

    return dagbag.DagBag(dag_folder=str(folder), include_examples=False)


def _task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
            )
        ).all()
    return {(task_id if map_index < 0 else f"{task_id}[{map_index}]"): str(state) for task_id, map_index, state in rows}


def _return_values(dag_id: str, run_id: str) -> dict[tuple[str, int], Any]:
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_provider_piriod.compat import airflow_v3

    with create_session() as session:
        if airflow_v3():
            from airflow.models.xcom import XComModel

            models = session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key == "return_value"
                )
            ).all()
            return {(row.task_id, row.map_index): XComModel.deserialize_value(row) for row in models}
        from airflow.models.xcom import XCom

        xcoms = session.scalars(
            select(XCom).where(XCom.dag_id == dag_id, XCom.run_id == run_id, XCom.key == "return_value")
        ).all()
        return {(row.task_id, row.map_index): row.value for row in xcoms}
