"""The package uses http.client and urllib3 through their public names only.

Their private names (``_read_status``, ``_new_conn``, ``_put_conn``, ``_original_response``...) can change
in any Python or urllib3 release; the package must not override one in a subclass, read or call one, or
import one.
"""

from __future__ import annotations

import ast
import http.client
import inspect
import re
from pathlib import Path

import urllib3
import urllib3.connection
import urllib3.connectionpool
import urllib3.poolmanager
import urllib3.response

import airflow_provider_piriod

PACKAGE = Path(airflow_provider_piriod.__file__).parent
LIBRARIES = (http.client, urllib3, urllib3.connection, urllib3.connectionpool, urllib3.poolmanager, urllib3.response)


#: a named tuple's documented methods (urllib3's ``Url`` is one): public despite the underscore
NAMED_TUPLE_API = {"_replace", "_asdict", "_fields", "_make", "_field_defaults"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__")) and name not in NAMED_TUPLE_API


def library_private_names() -> set[str]:
    """Every private name of the modules above and of the classes they define."""
    names: set[str] = set()
    for module in LIBRARIES:
        for name, value in vars(module).items():
            if _private(name):
                names.add(name)
            if inspect.isclass(value):
                for klass in value.__mro__:
                    names.update(n for n in vars(klass) if _private(n))
    return names


def package_sources() -> dict[Path, str]:
    return {path: path.read_text() for path in PACKAGE.rglob("*.py")}


def own_names(sources: dict[Path, str]) -> set[str]:
    """Private names the package defines itself (functions, classes, attributes it assigns)."""
    names: set[str] = set()
    for source in sources.values():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return {name for name in names if _private(name)}


def test_no_subclass_overrides_a_private_name_of_http_client_or_urllib3():
    library = library_private_names()
    found = []
    for source in package_sources().values():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in library:
                        found.append(f"{node.name}.{item.name}")
    assert found == []


def test_no_private_name_of_http_client_or_urllib3_is_read_called_or_imported():
    sources = package_sources()
    # a private name the package also defines for itself (``_lock``) is its own where it is used
    foreign = library_private_names() - own_names(sources)
    alternatives = "|".join(sorted(map(re.escape, foreign)))
    pattern = re.compile(rf"\.({alternatives})\b")
    imports = re.compile(r"^\s*from (http\.client|urllib3[\w.]*) import .*\b_[a-z]", re.MULTILINE)
    found = []
    for path, source in sources.items():
        found += [f"{path.name}: .{m.group(1)}" for m in pattern.finditer(source)]
        found += [f"{path.name}: {m.group(0).strip()}" for m in imports.finditer(source)]
    assert found == []


def test_the_check_knows_the_names_it_is_meant_to_catch():
    names = library_private_names()
    for name in ("_read_status", "_check_close", "_new_conn", "_put_conn", "_get_conn"):
        assert name in names
