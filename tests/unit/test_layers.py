"""The layer order of docs/design.md ("Layers: imports point downward only"), enforced from the imports.

Every ``.py`` under ``seer_torch/`` and ``models/`` (installed as ``seer_torch.models``, see
``[tool.setuptools.package-dir]`` in pyproject.toml) is parsed with :mod:`ast`; every import of a
``seer_torch`` module is collected, at module level and inside functions alike, and checked
against these rules:

1. a module imports only modules of its own layer or of a lower one (:data:`LAYERS`);
2. policies import no executor, no backend and no profiler, and nothing with effects
   (:data:`POLICY_FORBIDDEN`): a policy is pure, so the same object runs in the simulator and
   on the cluster;
3. the executor imports policies and backends only through their interfaces
   (:data:`EXECUTOR_MAY_IMPORT`): the policy and the backend are passed in;
4. no import cycle between modules through imports that run when a module is imported
   (module level, class bodies included); cycles that close only through imports inside
   functions are found by a separate test;
5. every module has a layer (a new module must be placed in :data:`LAYER_RULES`), and every
   ``seer_torch`` name imported exists.

The checker (:func:`check_imports`, :func:`import_cycles`) is pure: it takes module names,
layers and imports, so the tests below also feed it synthetic upward imports and cycles and
assert that they are reported.
"""

from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Lowest first. A module may import its own layer and every layer before it in this list.
LAYERS: tuple[str, ...] = (
    "foundation",  # shared by everyone, imports only itself (see FOUNDATION for why each is here)
    "data",  # datasets: the embedded default, CIFAR-10 from a local folder
    "models",  # the model registry (models/ installed as seer_torch.models)
    "worker",  # the trial API and seer-torch's own torchrun training script on it
    "backends",  # local torchrun subprocesses, the simulated backend, one abstract interface
    "scaling",  # the scaling model (pure) and the profiler (runs probe jobs on a backend)
    "policies",  # SEER and the baselines: pure, no I/O, no clock
    "executor",  # drives a policy against a backend with a clock and a budget meter
    "harness",  # the simulation harness and bench recording: build executors, above them
    "cli",  # the seer command and its command modules
)

#: Why each foundation module sits below every layer (any layer may import it).
FOUNDATION: dict[str, str] = {
    "seer_torch/__init__.py": "the package: it runs before any of its modules, so it imports none",
    "seer_torch/errors.py": "the SeerError hierarchy that every layer raises (ConfigError for users' input)",
    "seer_torch/clock.py": "the Clock protocol injected into backends, the profiler and the executor",
    "seer_torch/runfiles.py": (
        "atomic writes and the metrics/checkpoint records of a trial folder: the file protocol "
        "between the worker (writes) and the backends, profiler and executor (read), so both "
        "ends of it import it"
    ),
    "seer_torch/run_lock.py": "the run folder's lock, taken by the commands and known to the executor",
    "seer_torch/wakeup.py": (
        "the tuner's wake-up pipe: the local backend holds it, a parked job's rank 0 writes to it "
        "(both ends of one protocol, like runfiles.py)"
    ),
    "seer_torch/config.py": (
        "the experiment file's schema and its draws (sample_configurations), read by the "
        "commands, the harness, the executor and the profiler (which draws its probe configurations)"
    ),
    "seer_torch/config_values.py": "the single-value checks of config.py's section parsers (the schema)",
    "seer_torch/plugins.py": (
        "plug-in models and datasets named by import path: the experiment file's schema resolves "
        "them at load, the model registry and the datasets call them"
    ),
    "seer_torch/objective.py": (
        "the metric a run optimizes and its mode (the score's sign), read by the experiment "
        "file's schema, the learning-curve tables, the executor and the harness"
    ),
    "seer_torch/curves.py": (
        "the learning-curve table format (and its parametric generator), read by the simulated "
        "backend's harness and written by bench recording"
    ),
}

#: First match wins; patterns are fnmatch patterns over the path from the repository root
#: (``*`` also matches ``/``, so ``seer_torch/executor*`` covers executor.py and executor/).
LAYER_RULES: tuple[tuple[str, str], ...] = (
    *((path, "foundation") for path in FOUNDATION),
    ("seer_torch/cli*", "cli"),
    ("seer_torch/api.py", "cli"),  # the Python entry point: the commands' bodies, called from Python
    ("seer_torch/commands/*", "cli"),
    ("seer_torch/__main__.py", "cli"),
    ("seer_torch/simulate.py", "harness"),
    ("seer_torch/recording.py", "harness"),
    ("seer_torch/verify.py", "harness"),  # seer verify: runs the launches (torchrun), above the executor
    ("seer_torch/verify_checks.py", "harness"),  # seer verify's judgement, pure
    # what tests/ and scripts/ share (the fault experiment, running seer, the kept-alive
    # protocol's tuner side): above the backends it reads processes through; nothing imports it
    ("seer_torch/testing.py", "harness"),
    # seer report: reads a run's files (report_data.py, pure but for read_run_files) and draws them
    # (report.py); above the executor and the policies whose records and answer rule it reads
    ("seer_torch/report*", "harness"),
    ("seer_torch/executor*", "executor"),
    ("seer_torch/policies/*", "policies"),
    ("seer_torch/scaling/*", "scaling"),
    ("seer_torch/backends/*", "backends"),
    ("seer_torch/worker*", "worker"),
    ("seer_torch/training/*", "worker"),
    # the trial API (trial.py) and the modules under it: trial_checkpoint.py (the checkpoint
    # format), trial_keepalive.py (a kept-alive job's parking and switching)
    ("seer_torch/trial*", "worker"),
    ("models/*", "models"),
    ("seer_torch/data.py", "data"),
    ("seer_torch/cifar_synthetic.py", "data"),
)

#: Modules a policy must not import (rule 2): the executor, every backend and the profiler (by
#: layer or name), and the standard library's clocks, processes and files.
POLICY_FORBIDDEN_LAYERS = ("executor", "backends")
POLICY_FORBIDDEN: tuple[str, ...] = (
    "seer_torch.scaling.profiler",
    "seer_torch.clock",
    "seer_torch.runfiles",
    "seer_torch.run_lock",
    "time",
    "os",
    "subprocess",
    "threading",
    "multiprocessing",
    "signal",
    "socket",
    "shutil",
    "pathlib",
    "torch",
)

#: ``(importer, imported)`` imports exempt from rule 1: the package's ``__getattr__`` (PEP 562)
#: re-exports the Python entry point on first attribute access (``seer_torch.tune``), long after
#: the package was imported; importing the package imports nothing.
LAZY_REEXPORTS = frozenset({("seer_torch", "seer_torch.api")})

#: Rule 3: what the executor may import from the policies and backends layers: their packages
#: and interfaces (the policy's decisions and snapshot types, the cost model, the billing; the
#: abstract backend), never a concrete policy, the registry or a concrete backend.
EXECUTOR_MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "policies": (
        "seer_torch.policies",
        "seer_torch.policies.base",
        "seer_torch.policies.costs",
        "seer_torch.policies.billing",
    ),
    "backends": ("seer_torch.backends", "seer_torch.backends.base"),
}


@dataclass(frozen=True)
class Import:
    """One import statement's target, as the importing module names it."""

    importer: str  # dotted module name, e.g. "seer_torch.executor"
    imported: str  # dotted module name (``from X import Y``: ``X.Y`` when that is a module, else ``X``)
    line: int
    where: str  # "module" (runs at import), "function" (inside a def), "type-checking"


def module_name(relative_path: str) -> str:
    """The dotted name ``relative_path`` installs as (models/ installs as seer_torch.models)."""
    parts = list(Path(relative_path).with_suffix("").parts)
    if parts[0] == "models":
        parts = ["seer_torch", *parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(relative_path: str) -> str | None:
    """The layer of the module at ``relative_path``, or ``None`` when no rule places it."""
    for pattern, layer in LAYER_RULES:
        if fnmatch.fnmatchcase(relative_path, pattern):
            return layer
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_in_source(
    module: str, source: str, *, is_package: bool, known_modules: Iterable[str]
) -> list[Import]:
    """Every import in ``source`` (the module ``module``), resolved against ``known_modules``.

    ``from X import Y`` names the module ``X.Y`` when that is a known module, else ``X``.
    Relative imports are resolved from ``module`` (a package's ``__init__`` is its own base).
    ``importlib.import_module("...")`` with a constant name counts as an import where it is
    called. Imports under ``if TYPE_CHECKING:`` are marked ``"type-checking"``.
    """
    known = set(known_modules)
    base = module.split(".") if is_package else module.split(".")[:-1]
    found: list[Import] = []

    def add(name: str, line: int, where: str) -> None:
        imp = Import(module, name, line, where)
        if imp not in found:  # `from X import a, b` of one module counts once
            found.append(imp)

    def visit(node: ast.AST, where: str) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno, where)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                source_module = ".".join(anchor + ([node.module] if node.module else []))
            else:
                source_module = node.module or ""
            for alias in node.names:
                candidate = f"{source_module}.{alias.name}"
                add(candidate if candidate in known else source_module, node.lineno, where)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            add(node.args[0].value, node.lineno, "function" if where == "module" else where)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            inner = "type-checking" if where == "type-checking" else "function"
            for child in ast.iter_child_nodes(node):
                visit(child, inner)
            return
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, "type-checking")
            for child in node.orelse:
                visit(child, where)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, where)

    visit(ast.parse(source), "module")
    return found


@dataclass(frozen=True)
class Tree:
    """The modules of the source tree: their layers (``None``: unplaced) and their imports."""

    layers: Mapping[str, str | None]
    paths: Mapping[str, str]
    imports: tuple[Import, ...]


def scan_tree(repo: Path = REPO) -> Tree:
    """Parse every .py under seer_torch/ and models/ of ``repo``."""
    files = sorted([*repo.glob("seer_torch/**/*.py"), *repo.glob("models/**/*.py")])
    paths = {module_name(str(f.relative_to(repo))): str(f.relative_to(repo)) for f in files}
    layers = {name: layer_of(path) for name, path in paths.items()}
    imports: list[Import] = []
    for name, path in paths.items():
        source = (repo / path).read_text(encoding="utf-8")
        imports += imports_in_source(
            name, source, is_package=path.endswith("__init__.py"), known_modules=paths
        )
    return Tree(layers, paths, tuple(imports))


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def check_imports(layers: Mapping[str, str | None], imports: Iterable[Import]) -> list[str]:
    """Every breach of rules 1, 2, 3 and 5 of the module docstring, one line each.

    ``layers`` maps each module of the tree to its layer (``None``: no rule places it).
    Imports of modules outside ``seer_torch`` are checked only against :data:`POLICY_FORBIDDEN`.
    """
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    problems = [f"{m}: no layer (add it to LAYER_RULES)" for m, layer in layers.items() if layer is None]
    for imp in imports:
        if (imp.importer, imp.imported) in LAZY_REEXPORTS:
            continue
        own = layers.get(imp.importer)
        at = f"{imp.importer}:{imp.line} imports {imp.imported} ({imp.where})"
        if own == "policies" and _within(imp.imported, POLICY_FORBIDDEN):
            problems.append(f"{at}: a policy imports no clock, file, process or profiler")
        if not _within(imp.imported, ["seer_torch"]):
            continue
        target = imp.imported
        if target not in layers:
            problems.append(f"{at}: no such module in the tree")
            continue
        theirs = layers[target]
        if own is None or theirs is None:
            continue  # reported above
        if rank[theirs] > rank[own]:
            problems.append(f"{at}: upward, {own} -> {theirs}")
        if own == "policies" and theirs in POLICY_FORBIDDEN_LAYERS:
            problems.append(f"{at}: a policy imports no {theirs}")
        if own == "executor" and theirs in EXECUTOR_MAY_IMPORT and target not in EXECUTOR_MAY_IMPORT[theirs]:
            problems.append(f"{at}: the executor imports {theirs} only through {EXECUTOR_MAY_IMPORT[theirs]}")
    return problems


def import_cycles(imports: Iterable[Import], *, where: Iterable[str]) -> list[list[str]]:
    """The import cycles among seer_torch modules through imports marked one of ``where``.

    Each cycle is a strongly connected component of two or more modules (Tarjan's algorithm),
    sorted; the list is sorted too.
    """
    kinds = set(where)
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.where in kinds and imp.imported != imp.importer and _within(imp.imported, ["seer_torch"]):
            graph.setdefault(imp.importer, set()).add(imp.imported)
            graph.setdefault(imp.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(components)


# --- the real tree -----------------------------------------------------------------------------

TREE = scan_tree()
_LAYER_PROBLEMS = check_imports(TREE.layers, TREE.imports)
_MODULE_CYCLES = import_cycles(TREE.imports, where=["module"])
_ALL_CYCLES = import_cycles(TREE.imports, where=["module", "function"])


def test_scan_finds_the_tree():
    assert TREE.layers["seer_torch.models"] == "models"
    assert TREE.paths["seer_torch.models"] == "models/__init__.py"
    assert TREE.layers["seer_torch.errors"] == "foundation"
    assert len(TREE.layers) >= 20
    # Function-level imports are collected too (models imports torchvision inside a function).
    assert any(i.where == "function" for i in TREE.imports)


def test_real_tree_keeps_the_layer_order():
    assert _LAYER_PROBLEMS == []


def test_real_tree_has_no_import_cycle_at_module_level():
    assert _MODULE_CYCLES == []


def test_real_tree_has_no_import_cycle_through_function_level_imports():
    assert _ALL_CYCLES == []


# --- the checker on synthetic trees: each rule bites ----------------------------------------------

_SYNTHETIC_LAYERS = {
    "seer_torch": "foundation",
    "seer_torch.errors": "foundation",
    "seer_torch.worker": "worker",
    "seer_torch.backends.base": "backends",
    "seer_torch.backends.local": "backends",
    "seer_torch.scaling.model": "scaling",
    "seer_torch.scaling.profiler": "scaling",
    "seer_torch.policies": "policies",
    "seer_torch.policies.base": "policies",
    "seer_torch.policies.sha": "policies",
    "seer_torch.executor": "executor",
    "seer_torch.executor.loop": "executor",
    "seer_torch.simulate": "harness",
    "seer_torch.cli": "cli",
}


def _imports(module: str, source: str, *, is_package: bool = False) -> list[Import]:
    return imports_in_source(module, source, is_package=is_package, known_modules=_SYNTHETIC_LAYERS)


def test_a_downward_import_passes():
    imports = _imports("seer_torch.executor.loop", "from seer_torch.policies.base import Decision\n")
    assert check_imports(_SYNTHETIC_LAYERS, imports) == []


def test_an_upward_import_is_reported_at_module_and_function_level():
    source = "import seer_torch.errors\ndef f():\n    from seer_torch.executor import Tuner\n"
    imports = _imports("seer_torch.worker", source)
    assert [(i.imported, i.line, i.where) for i in imports] == [
        ("seer_torch.errors", 1, "module"),
        ("seer_torch.executor", 3, "function"),
    ]
    assert check_imports(_SYNTHETIC_LAYERS, imports) == [
        "seer_torch.worker:3 imports seer_torch.executor (function): upward, worker -> executor"
    ]
    # The executor importing the simulation harness (what executor.py did before issue 14).
    upward = _imports(
        "seer_torch.executor.loop", "def f():\n    from seer_torch.simulate import make_policy\n"
    )
    assert check_imports(_SYNTHETIC_LAYERS, upward) == [
        "seer_torch.executor.loop:2 imports seer_torch.simulate (function): upward, executor -> harness"
    ]


def test_a_policy_importing_the_profiler_a_backend_or_a_clock_is_reported():
    source = (
        "import time\n"
        "from seer_torch.scaling import profiler\n"
        "from seer_torch.scaling.model import ScalingModel\n"
        "from seer_torch.backends.base import JobSpec\n"
    )
    problems = check_imports(_SYNTHETIC_LAYERS, _imports("seer_torch.policies.sha", source))
    assert problems == [
        "seer_torch.policies.sha:1 imports time (module): "
        "a policy imports no clock, file, process or profiler",
        "seer_torch.policies.sha:2 imports seer_torch.scaling.profiler (module): "
        "a policy imports no clock, file, process or profiler",
        "seer_torch.policies.sha:4 imports seer_torch.backends.base (module): a policy imports no backends",
    ]


def test_the_executor_importing_a_concrete_policy_or_backend_is_reported():
    source = (
        "from seer_torch.policies.base import Decision\n"
        "from seer_torch.policies.sha import ShaPolicy\n"
        "from seer_torch.backends.base import Backend\n"
        "from seer_torch.backends.local import LocalBackend\n"
    )
    problems = check_imports(_SYNTHETIC_LAYERS, _imports("seer_torch.executor.loop", source))
    assert [p.split(":")[1].split(" ")[0] for p in problems] == ["2", "4"]
    assert "the executor imports policies only through" in problems[0]


def test_an_unplaced_module_and_a_missing_module_are_reported():
    layers = {**_SYNTHETIC_LAYERS, "seer_torch.newthing": None}
    imports = _imports("seer_torch.cli", "from seer_torch.gone import x\n")
    assert check_imports(layers, imports) == [
        "seer_torch.newthing: no layer (add it to LAYER_RULES)",
        "seer_torch.cli:1 imports seer_torch.gone (module): no such module in the tree",
    ]


def test_relative_and_type_checking_imports_are_resolved():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import base\n"
        "from .base import Decision\n"
        "if TYPE_CHECKING:\n"
        "    from seer_torch.executor import Tuner\n"
    )
    imports = _imports("seer_torch.policies.sha", source)
    assert [(i.imported, i.where) for i in imports[1:]] == [
        ("seer_torch.policies.base", "module"),
        ("seer_torch.policies.base", "module"),
        ("seer_torch.executor", "type-checking"),
    ]
    # A type-only upward import still breaks the order; a package's own relative import does not.
    assert len(check_imports(_SYNTHETIC_LAYERS, imports)) == 2
    package = _imports("seer_torch.policies", "from .sha import ShaPolicy\n", is_package=True)
    assert [i.imported for i in package] == ["seer_torch.policies.sha"]


def test_cycles_are_found_and_split_by_where_they_close():
    imports = [
        *_imports("seer_torch.simulate", "from seer_torch.executor import Tuner\n"),
        *_imports("seer_torch.executor", "def f():\n    from seer_torch.simulate import make_policy\n"),
        *_imports("seer_torch.policies.base", "from seer_torch.policies.sha import X\n"),
        *_imports("seer_torch.policies.sha", "from seer_torch.policies.base import Y\n"),
    ]
    assert import_cycles(imports, where=["module"]) == [
        ["seer_torch.policies.base", "seer_torch.policies.sha"]
    ]
    assert import_cycles(imports, where=["module", "function"]) == [
        ["seer_torch.executor", "seer_torch.simulate"],
        ["seer_torch.policies.base", "seer_torch.policies.sha"],
    ]


def test_every_layer_rule_names_a_layer_and_foundation_modules_exist():
    assert {layer for _, layer in LAYER_RULES} <= set(LAYERS)
    for path in FOUNDATION:
        assert (REPO / path).is_file(), path


def test_an_upward_import_added_to_a_copy_of_the_tree_is_reported(tmp_path):
    # The real tree's files, with one upward import added on purpose to the worker.
    for path in TREE.paths.values():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text((REPO / path).read_text(encoding="utf-8"), encoding="utf-8")
    worker = tmp_path / TREE.paths["seer_torch.worker"]
    worker.write_text(worker.read_text() + "\n\ndef _oops():\n    import seer_torch.cli\n")
    copy = scan_tree(tmp_path)
    added = set(check_imports(copy.layers, copy.imports)) - set(_LAYER_PROBLEMS)
    assert len(added) == 1
    assert added.pop().endswith("imports seer_torch.cli (function): upward, worker -> cli")
