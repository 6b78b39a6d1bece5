"""
Scenarios A and B at 16 workers for two versions of the package, side by side in one run.

The package as it was at a baseline commit ("before", taken out of git into a temporary directory) and the
package of this tree ("after") each run in a process of their own with the same interpreter and
dependencies, against one emulator shared with the ideal client, which runs in the benchmark's process.
The three take turns, each round in another order, and the median of each is kept, so that a change in
the machine's load falls on all of them alike. Each version's process builds one hook per latency and
reuses it, as section A does, and times only the call (after a full garbage collection).

Without git, or without the baseline commit (an sdist, a shallow clone), the before column is left empty
and the reason printed.

    .venv/bin/python benchmarks/versions.py --child     (what the parent starts; reads commands on stdin)
"""

from __future__ import annotations

import gc
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PACKAGE = "airflow_provider_piriod"
REPOSITORY = Path(__file__).resolve().parents[1]
BASELINE = "61d1b5b"  # the last commit before the sync transport went through urllib3
MARK = "@@bench@@ "  # starts the lines a child answers with; anything else on its stdout is log output


def baseline_package(commit: str, into: Path) -> str | None:
    """Extract the package as it was at ``commit`` into ``into``; the reason it cannot be had, else None."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPOSITORY), "archive", "--format=tar", commit, PACKAGE],
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"git is not available ({error.__class__.__name__})"
    if archive.returncode != 0:
        message = archive.stderr.decode(errors="replace").strip().splitlines()
        return f"commit {commit} is not available here ({message[-1] if message else 'git archive failed'})"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        try:
            tar.extractall(into, filter="data")
        except TypeError:  # a Python without extraction filters; the archive comes from this repository's git
            tar.extractall(into)
    if not (into / PACKAGE / "__init__.py").is_file():
        return f"commit {commit} has no {PACKAGE} package"
    return None


def short_head() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(REPOSITORY), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return "this tree"
    return f"this tree, HEAD {head.stdout.strip()}" if head.returncode == 0 else "this tree"


class Version:
    """A process that imports the package from ``root`` and times the hook's calls on command."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 (open as long as the process runs)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.root), os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            env=env,
            text=True,
        )
        package = Path(self.ask({"op": "where"})["package"]).resolve()
        if package.parent != self.root:
            self.close()
            raise RuntimeError(f"the benchmark child imported {PACKAGE} from elsewhere than asked")

    def ask(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(MARK):
                answer = json.loads(line[len(MARK) :])
                if "error" in answer:
                    raise RuntimeError(f"benchmark child failed: {answer['error']}")
                return answer
        self.errors.seek(0)
        tail = self.errors.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"benchmark child exited with {self.process.wait()}:\n{tail}")

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.errors.close()


def child() -> None:
    """Answer the parent's commands, one JSON line each, until stdin closes."""
    hooks: dict[str, Any] = {}
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "where":
                import airflow_provider_piriod

                answer: dict[str, Any] = {"package": str(Path(airflow_provider_piriod.__file__).parent)}
            else:
                answer = {"wall": run_command(command, hooks)}
        except Exception as error:  # the parent shows it and stops
            answer = {"error": f"{error.__class__.__name__}: {error}"}
        sys.stdout.write(MARK + json.dumps(answer) + "\n")
        sys.stdout.flush()


def run_command(command: dict[str, Any], hooks: dict[str, Any]) -> float:
    from airflow_provider_piriod.hooks.piriod import PiriodHook

    if command["session"] not in hooks:
        os.environ.update(command["env"])
        hooks[command["session"]] = PiriodHook()
    hook = hooks[command["session"]]
    workers = command["workers"]
    gc.collect()
    started = time.perf_counter()
    if command["op"] == "A":
        hook.get_customers(command["ids"], max_workers=workers)
    else:
        list(hook.iter_customer_json(page_size=100, max_workers=workers))
    return time.perf_counter() - started


def rounds_of(
    emulator: Any, actions: dict[str, Callable[[], float | None]], rounds: int
) -> dict[str, tuple[float, int]]:
    """The median run (wall seconds, requests) of each action over ``rounds`` rounds, in turns, each round
    starting with another one. An action returns its own wall time, or None to be timed here."""
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in actions}
    names = list(actions)
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            emulator.reset()
            gc.collect()
            started = time.perf_counter()
            wall = actions[name]()
            wall = time.perf_counter() - started if wall is None else wall
            runs[name].append((wall, len(emulator.requests())))
    return {name: sorted(each)[rounds // 2] for name, each in runs.items()}


def untimed(action: Callable[[], object]) -> Callable[[], None]:
    """``action`` as one that returns None: timed by :func:`rounds_of`."""

    def run() -> None:
        action()

    return run


def ratio(value: float | None, over: float | None) -> str:
    return f"{value / over:7.2f}" if value and over else "      -"


def seconds(value: float | None) -> str:
    return f"{value:7.2f}" if value is not None else "      -"


def section_versions(
    n: int,
    latencies_ms: list[float],
    baseline: str,
    *,
    customers: int,
    ideal_by_id: Callable[[Any, list[str], int], object],
    ideal_list_read: Callable[[Any, int, int], object],
    workers: int = 16,
) -> None:
    """A (``n`` ids) and B (every live customer of ``customers`` generated, parallel pages) at ``workers``
    workers for each latency: the ideal client, the package at ``baseline`` and this tree's, in turns on one
    emulator; the ideal client's functions come from ``run.py``."""
    import airflow_provider_piriod
    from airflow_provider_piriod.testing import PiriodEmulator

    print(
        f"\nF. A and B at {workers} workers, before ({baseline}) and after ({short_head()}): one emulator, "
        "the ideal client beside them, each version in a process of its own"
    )
    versions: dict[str, Version] = {}
    with tempfile.TemporaryDirectory(prefix="piriod-before-") as folder:
        try:
            skipped = baseline_package(baseline, Path(folder))
            if skipped is None:
                try:
                    versions["before"] = Version(Path(folder))
                except RuntimeError as error:
                    skipped = f"the package at {baseline} does not start here ({str(error).splitlines()[0]})"
            if skipped:
                print(f"  the before column is skipped: {skipped}")
            versions["after"] = Version(Path(airflow_provider_piriod.__file__).parent.parent)
            with PiriodEmulator(customers=customers, in_process=False) as emulator:
                ids = [c["id"] for c in emulator.customers()][:n]
                pages = math.ceil(len(emulator.customers()) / 100)
                print(
                    f"  {'':<22} {'':>6} {'':>8} {'wall s':^23} {'ratio to the floor':^23} "
                    f"{'vs ideal':^15} {'after /':>7}"
                )
                print(
                    f"  {'scenario':<22} {'ms':>6} {'floor s':>8} {'ideal':>7} {'before':>7} {'after':>7} "
                    f"{'ideal':>7} {'before':>7} {'after':>7} {'before':>7} {'after':>7} {'before':>7} "
                    f"{'requests':>9} {'rounds':>6}"
                )
                for latency_ms in latencies_ms:
                    emulator.set_latency(latency_ms)
                    latency, rounds = latency_ms / 1000, 5 if latency_ms <= 20 else 3
                    command = {"session": str(latency_ms), "env": emulator.connection_env(), "workers": workers}
                    a = {**command, "op": "A", "ids": ids}
                    ideal_by_id(emulator, ids[:100], workers)  # first reads are slower: not part of any figure
                    medians = versus(
                        emulator,
                        versions,
                        a,
                        {**a, "ids": ids[:100]},
                        lambda: ideal_by_id(emulator, ids, workers),
                        rounds,
                    )
                    print_row(f"A {n} ids", latency_ms, math.ceil(n / workers) * latency, medians, rounds)
                    b = {**command, "op": "B"}
                    ideal_list_read(emulator, 100, workers)
                    medians = versus(emulator, versions, b, b, lambda: ideal_list_read(emulator, 100, workers), rounds)
                    floor = (1 + math.ceil((pages - 1) / workers)) * latency
                    print_row(f"B {pages} pages", latency_ms, floor, medians, rounds)
        finally:
            for version in versions.values():
                version.close()


def versus(
    emulator: Any,
    versions: dict[str, Version],
    command: dict[str, Any],
    warm: dict[str, Any],
    ideal: Callable[[], object],
    rounds: int,
) -> dict[str, tuple[float, int]]:
    """The medians of the ideal client and of each version running ``command``, after one ``warm`` call of
    each version (its first calls import and connect: not part of any figure)."""
    actions: dict[str, Callable[[], float | None]] = {"ideal": untimed(ideal)}
    for name, version in versions.items():
        version.ask(warm)
        actions[name] = lambda version=version: version.ask(command)["wall"]
    return rounds_of(emulator, actions, rounds)


def print_row(label: str, latency_ms: float, floor: float, medians: dict[str, tuple[float, int]], rounds: int) -> None:
    walls = {name: medians[name][0] if name in medians else None for name in ("ideal", "before", "after")}
    counts = sorted({count for _, count in medians.values()})
    ideal, before, after = walls["ideal"], walls["before"], walls["after"]
    print(
        f"  {label:<22} {latency_ms:6g} {seconds(floor if floor else None):>8} {seconds(ideal)} {seconds(before)} "
        f"{seconds(after)} {ratio(ideal, floor)} {ratio(before, floor)} {ratio(after, floor)} "
        f"{ratio(before, ideal)} {ratio(after, ideal)} {ratio(after, before)} "
        f"{'/'.join(map(str, counts)):>9} {rounds:>6}",
        flush=True,
    )


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    child()
