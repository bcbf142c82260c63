"""The architecture as tests (docs/architecture.md): the import contract in pyproject.toml
holds, it breaks when a forbidden import is added, and modules and functions stay small."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "voice", "orchestration", "memory", "web")
# also in the contract: the benchmarks and the tests import no test module / are imported by none
CHECKED = (*PACKAGES, "benchmarks", "tests")
# the code the size rules cover: the packages and the benchmarks
SIZED = (*PACKAGES, "benchmarks")
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(no_cache=True, no_logo=True))")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the packages under ``root`` (it puts its cwd first on the path)."""
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_import_contract_is_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def copy_of_the_project(tmp_path: Path) -> Path:
    for package in CHECKED:
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__", "static", "node_modules",
                                                      "results", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


# one bad import each, of the kinds that hide: inside a function, under TYPE_CHECKING
BAD_IMPORTS = [
    ("voice/vad.py", "def _bad() -> None:\n    from orchestration.patterns import bulkhead\n",
     "voice imports nothing of the project"),
    ("memory/store.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
     "    from orchestration.log import events\n", "memory imports nothing of the project"),
    ("orchestration/log/store.py", "def _bad() -> None:\n    import gateway.app\n",
     "orchestration imports only memory"),
    ("orchestration/log/store.py",
     "def _bad() -> None:\n    from orchestration.workflow import engine\n",
     "no import cycles, at any depth"),
    ("benchmarks/load_ramp.py", "def _bad() -> None:\n    from tests import pg_server\n",
     "benchmarks and the product import no test module"),
]


@pytest.mark.parametrize(("path", "code", "contract"), BAD_IMPORTS,
                         ids=[f"{p}:{c}" for p, _, c in BAD_IMPORTS])
def test_a_forbidden_import_breaks_the_contract(tmp_path: Path, path: str, code: str,
                                                contract: str) -> None:
    root = copy_of_the_project(tmp_path)
    with (root / path).open("a") as f:
        f.write("\n\n" + code)
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout + result.stderr
    summary = " ".join(result.stdout.split())  # rich wraps long contract names
    assert re.search(re.escape(contract) + r"(?:(?!KEPT).)*? BROKEN", summary), result.stdout


MODULE_LINES = 400
FUNCTION_LINES = 60
# functions still over the limit, each with the reason it waits; the list only shrinks
KNOWN_LONG: dict[str, str] = {}


def sizes() -> tuple[dict[str, int], dict[str, int]]:
    """Lines of every module and of every function (nested ones included in their outer
    function's count, as a reader sees them) of the packages and the benchmarks."""
    modules: dict[str, int] = {}
    functions: dict[str, int] = {}
    for package in SIZED:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            text = path.read_text()
            modules[name] = len(text.splitlines())
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    assert node.end_lineno is not None
                    functions[f"{name}:{node.lineno} {node.name}"] = (
                        node.end_lineno - node.lineno + 1)
    return modules, functions


def test_modules_and_functions_are_small() -> None:
    modules, functions = sizes()
    big = {m: n for m, n in modules.items() if n > MODULE_LINES}
    long = {f.split(":")[0] + " " + f.split(" ")[1]: n for f, n in functions.items()
            if n > FUNCTION_LINES}
    assert big == {}, f"modules over {MODULE_LINES} lines: split them"
    assert set(long) - set(KNOWN_LONG) == set(), f"functions over {FUNCTION_LINES} lines"
    assert set(KNOWN_LONG) - set(long) == set(), "fixed: take it off KNOWN_LONG"
