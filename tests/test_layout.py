"""The package's layout: imports point one way and no module imports itself back round a cycle; no module grows
past 400 lines and no function past 80. Read from the sources with `ast` (every import counts: at the top, in a
function, or under TYPE_CHECKING)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"dreamworld": ROOT / "dreamworld", "dreamworld.envs": ROOT / "envs", "dreamworld.agents": ROOT / "agents",
           "dreamworld.kernels": ROOT / "kernels"}
MAX_LINES = 400
MAX_FUNCTION_LINES = 80
ROOT_MODULES = 10


def _modules() -> dict[str, Path]:
    """Every module of the installed package by its import name (a package by its `__init__`)."""
    modules = {}
    for prefix, folder in FOLDERS.items():
        for file in folder.rglob("*.py"):
            parts = file.relative_to(folder).with_suffix("").parts
            if prefix == "dreamworld" and parts[0] in ("envs", "agents", "kernels"):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((prefix, *parts))] = file
    return modules


MODULES = _modules()


def _imports(name: str, file: Path) -> set[str]:
    """The names `file` (module `name`) imports, absolute; `from X import y` gives X.y where that is a module."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base]) if base else ".".join(up)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & MODULES.keys()
            found.update(submodules)
            if len(submodules) < len(node.names):  # names defined in `base` itself
                found.add(base)
    return found


IMPORTS = {name: _imports(name, file) for name, file in MODULES.items()}


def _project(name: str) -> str | None:
    """The project module `name` is (or lies in), or None for a third-party or standard module."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_no_import_cycle():
    graph = {name: {m for m in map(_project, IMPORTS[name]) if m and m != name} for name in MODULES}
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)


def _allowed(module: str, allowed: tuple[str, ...]) -> bool:
    return any(module == a or module.startswith(a + ".") for a in allowed)


RULES = {
    # who: (the project modules it may import, or None for any, and the third-party packages it may import)
    "dreamworld.kernels": (("dreamworld.kernels",), ("torch", "triton")),
    "dreamworld.envs": (("dreamworld.envs", "dreamworld.io"), ("gymnasium", "numpy", "tqdm", "PIL", "ale_py",
                                                                "crafter", "pygame")),
    "dreamworld.agents": (("dreamworld.agents", "dreamworld.io"), ("gymnasium", "torch", "numpy", "tqdm")),
    "dreamworld.io": (("dreamworld.io",), ("torch", "safetensors")),
}
"""The one-way rules of DESIGN.md: agents see environments only through Gymnasium (whoever plays a policy from
frames encodes them, `dreamworld.dream.observations`); tqdm draws progress bars; envs import the optional games'
packages (Atari, Crafter) and pygame's keys where asked for."""

STDLIB = {"__future__", "collections", "dataclasses", "errno", "hashlib", "json", "math", "os", "re", "time",
          "types", "typing", "pathlib", "fcntl", "functools", "itertools", "contextlib", "warnings", "abc", "enum",
          "copy", "io", "shutil", "tempfile", "sys", "operator", "struct", "zipfile", "zlib", "random", "string",
          "textwrap", "importlib", "inspect", "glob", "logging", "threading", "traceback", "weakref", "bisect",
          "heapq", "numbers", "subprocess", "platform", "socket", "datetime", "uuid", "base64", "pickle", "ctypes"}


@pytest.mark.parametrize("who", sorted(RULES))
def test_imports_point_one_way(who):
    project, third_party = RULES[who]
    wrong = []
    for name, imports in IMPORTS.items():
        if not _allowed(name, (who,)):
            continue
        for imported in imports:
            top = imported.split(".")[0]
            if top == "dreamworld":
                ok = _allowed(_project(imported) or imported, project)
            else:
                ok = top in STDLIB or top in third_party
            if not ok:
                wrong.append(f"{name} imports {imported}")
    assert not wrong, f"{who} may import {project} and {third_party} only: " + "; ".join(sorted(wrong))


AGENT_USERS = ("dreamworld.agents", "dreamworld.jobs", "dreamworld.cli",
               "dreamworld.evaluate.calibration")  # plays graded policies through `agents.evaluate`'s episode loop
"""The modules of dreamworld that may import dreamworld.agents (DESIGN.md: jobs and the CLI)."""


def test_only_jobs_and_the_cli_wire_agents_to_models():
    wrong = [f"{name} imports {imported}" for name, imports in IMPORTS.items()
             if _allowed(name, ("dreamworld",)) and not _allowed(name, AGENT_USERS)
             for imported in imports if _allowed(imported, ("dreamworld.agents",))]
    assert not wrong, "; ".join(wrong)


def test_the_model_knows_nothing_of_training_dreams_or_jobs():
    later = ("dreamworld.train", "dreamworld.dream", "dreamworld.evaluate", "dreamworld.jobs", "dreamworld.cli",
             "dreamworld.play", "dreamworld.agents", "dreamworld.checkpoint")
    wrong = [f"{name} imports {imported}" for name, imports in IMPORTS.items() if _allowed(name, ("dreamworld.model",))
             for imported in imports if _allowed(imported, later)]
    assert not wrong, "; ".join(wrong)


def test_no_module_over_400_lines():
    long = {name: n for name, file in MODULES.items() if (n := len(file.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (at most {MAX_LINES} lines): {long}"


def test_the_package_root_holds_few_modules():
    root = sorted(p.name for p in FOLDERS["dreamworld"].glob("*.py"))
    assert len(root) <= ROOT_MODULES, root


def test_no_function_over_80_lines():
    long = [f"{name}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for name, file in MODULES.items() for node in ast.walk(ast.parse(file.read_text(), str(file)))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"split these functions where a name helps (at most {MAX_FUNCTION_LINES} lines): {long}"
