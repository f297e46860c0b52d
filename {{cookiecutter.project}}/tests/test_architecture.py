"""The package's shape: one ordered list of layers, imports only point down, stages stand alone.

``LAYERS`` runs from the bottom (the data contract) to the top (the command line). A module may
import its own layer and the layers below it, never one above: that keeps each room usable
without the rooms built on it (serving without the rollout, the registry without serving).
Function-level imports count too: a lazy import is still a dependency. Each DVC stage in
``pipeline/`` must also run on its own, so a stage that imports another would tie their code
together and make DVC rerun one when the other changes. One home for each rule: only
``modeling/metrics.py`` decides which way a metric is better.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from {{ cookiecutter.package }}.config import ENGINEERED_FILE, SCHEMA_FILE
from {{ cookiecutter.package }}.modeling.metrics import METRICS

PACKAGE = "{{ cookiecutter.package }}"
SOURCE = Path(__file__).resolve().parents[1] / "src" / PACKAGE
# Bottom to top; a subpackage (a folder) or a top-level module, by its name.
LAYERS = [
    "contract",
    "modeling",
    "config",
    "data",
    "registry",
    "serving",
    "monitoring",
    "rollout",
    "lifecycle",
    "pipeline",
    "cli",
]
# The entry point `python -m <package>` is the command line's.
ALIASES = {"__main__": "cli"}


def imported_modules(path: Path) -> set[str]:
    """Every ``{{ cookiecutter.package }}.*`` module a file imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith(PACKAGE))
    return found


def layer_of(name: str) -> str | None:
    """The layer of a dotted module name (``pkg.registry.champion`` -> ``registry``)."""
    parts = name.split(".")
    if len(parts) < 2:
        return None
    return ALIASES.get(parts[1], parts[1])


def sources() -> list[Path]:
    return sorted(p for p in SOURCE.rglob("*.py") if p.name != "__init__.py" or p.parent != SOURCE)


def module_name(path: Path) -> str:
    relative = path.relative_to(SOURCE).with_suffix("")
    parts = [part for part in relative.parts if part != "__init__"]
    return ".".join([PACKAGE, *parts])


def modules(layer: str) -> list[Path]:
    return [path for path in sources() if layer_of(module_name(path)) == layer]


def upward_imports(path: Path, name: str | None = None) -> list[str]:
    """Imports of ``path`` (module ``name``, by default its place in the package) that point to
    a layer above its own."""
    own = LAYERS.index(layer_of(name or module_name(path)))
    return sorted(
        name
        for name in imported_modules(path)
        if (layer := layer_of(name)) in LAYERS and LAYERS.index(layer) > own
    )


@pytest.mark.parametrize("stage", modules("pipeline"), ids=lambda path: path.stem)
def test_no_stage_imports_another_stage(stage: Path) -> None:
    others = {f"{PACKAGE}.pipeline.{p.stem}" for p in modules("pipeline")} - {
        f"{PACKAGE}.pipeline.{stage.stem}"
    }
    assert imported_modules(stage) & others == set()


@pytest.mark.parametrize("layer", LAYERS)
def test_layers_import_only_the_layers_below_them(layer: str) -> None:
    found = {str(path.relative_to(SOURCE)): upward_imports(path) for path in modules(layer)}
    assert {path: names for path, names in found.items() if names} == {}


def test_every_module_belongs_to_a_layer() -> None:
    """A new room must take its place in LAYERS before its imports can be judged."""
    unplaced = sorted(
        str(path.relative_to(SOURCE))
        for path in sources()
        if layer_of(module_name(path)) not in LAYERS
    )
    assert unplaced == []


def test_no_import_cycles() -> None:
    """Within a layer too: two modules that import each other are one module in two files."""
    graph = {module_name(path): set() for path in sources()}
    for path in sources():
        for name in imported_modules(path):
            # `from pkg.sub import module` names the module; `from pkg.module import name` the
            # module itself: keep whichever is a module of the package.
            target = name if name in graph else name.rpartition(".")[0]
            if target in graph and target != module_name(path):
                graph[module_name(path)].add(target)
    visiting, done, cycles = set(), set(), []

    def visit(node: str, trail: list[str]) -> None:
        visiting.add(node)
        for child in sorted(graph[node]):
            if child in visiting:
                cycles.append(" -> ".join([*trail[trail.index(child) :], child]))
            elif child not in done:
                visit(child, [*trail, child])
        visiting.discard(node)
        done.add(node)

    for node in sorted(graph):
        if node not in done:
            visit(node, [node])
    assert cycles == []


# A module longer than this holds more than one job: split it where the jobs part. The files
# `make adopt` writes from your data grow with its columns, by design, and are not held to it.
MODULE_LINES = 400
WRITTEN_FROM_DATA = {SCHEMA_FILE, ENGINEERED_FILE}


def test_every_module_is_short_enough_to_read() -> None:
    project = SOURCE.parents[1]
    lines = {
        path.relative_to(project): len(path.read_text().splitlines())
        for path in sources()
        if path.relative_to(project) not in WRITTEN_FROM_DATA
    }
    assert {str(path): n for path, n in lines.items() if n > MODULE_LINES} == {}


# A command parses its options and calls one function of the package: its body (past the
# docstring and imports) holds at most this many statements.
COMMAND_STATEMENTS = 8


def commands() -> list[ast.FunctionDef]:
    trees = [ast.parse(path.read_text()) for path in sorted((SOURCE / "cli").glob("*.py"))]
    return [
        node
        for tree in trees
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("app.command" in ast.unparse(decorator) for decorator in node.decorator_list)
    ]


def statements(function: ast.FunctionDef) -> int:
    body = [
        node
        for node in function.body
        if not isinstance(node, ast.Import | ast.ImportFrom)
        and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
    ]
    return sum(isinstance(inner, ast.stmt) for node in body for inner in ast.walk(node))


def test_commands_only_parse_and_call() -> None:
    """The work of a command lives in the room it belongs to, where the Makefile's and the
    workflows' callers and the tests reach it too."""
    found = {command.name: statements(command) for command in commands()}
    assert len(found) > 10
    assert {name: n for name, n in found.items() if n > COMMAND_STATEMENTS} == {}


def test_the_walk_sees_real_imports() -> None:
    """Guards the guard: the train stage's known imports are found, and so is a lazy import
    inside a function (the command line imports every stage that way)."""
    found = imported_modules(SOURCE / "pipeline" / "train.py")
    assert f"{PACKAGE}.modeling.model" in found and f"{PACKAGE}.contract.validation" in found
    assert f"{PACKAGE}.pipeline.train" in imported_modules(SOURCE / "cli" / "pipeline.py")


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    """Guards the guard: a contract module importing the registry is reported."""
    schema = SOURCE / "contract" / "schema.py"
    assert upward_imports(schema) == []
    copy = tmp_path / "schema.py"
    copy.write_text(
        schema.read_text() + f"\n\ndef _late():\n    from {PACKAGE}.registry import champion\n"
    )
    assert upward_imports(copy, f"{PACKAGE}.contract.schema") == [
        f"{PACKAGE}.registry",
        f"{PACKAGE}.registry.champion",
    ]


def direction_tells(source: str) -> list[str]:
    """Where ``source`` works a metric's direction out for itself: it reads ``higher_is_better``,
    compares a value with a metric's name, or picks ``at_least`` / ``at_most`` by a condition."""
    tells = set()
    for node in ast.walk(ast.parse(source)):
        if "higher_is_better" in _words([node], deep=False):
            tells.add((node.lineno, "reads higher_is_better"))
        elif isinstance(node, ast.Compare) and (named := sorted(_words([node]) & set(METRICS))):
            tells.add((node.lineno, f"compares with the metric name {named[0]!r}"))
        elif isinstance(node, ast.If | ast.IfExp):
            body, orelse = _words(_as_list(node.body)), _words(_as_list(node.orelse))
            if {"at_least", "at_most"} <= (body | orelse) and body != orelse:
                tells.add((node.lineno, "picks at_least / at_most by a condition"))
    return [f"line {line}: {tell}" for line, tell in sorted(tells)]


def _as_list(part: ast.AST | list[ast.AST]) -> list[ast.AST]:
    return part if isinstance(part, list) else [part]


def _words(nodes: list[ast.AST], deep: bool = True) -> set[str]:
    """Identifiers, attribute and keyword names and strings in ``nodes`` (with their subtrees
    when ``deep``)."""
    found = set()
    for node in [child for tree in nodes for child in ast.walk(tree)] if deep else nodes:
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            found.add(node.arg)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.add(node.value)
    return found


def test_only_the_metric_table_decides_a_direction() -> None:
    """A module that judges direction itself must ask the Metric instead (better_by, meets,
    holds, change, side, bound, limit_key, direction in modeling/metrics.py)."""
    home = SOURCE / "modeling" / "metrics.py"
    found = {
        str(path.relative_to(SOURCE)): direction_tells(path.read_text())
        for path in sources()
        if path != home
    }
    assert {path: tells for path, tells in found.items() if tells} == {}


def test_a_direction_decided_elsewhere_is_caught() -> None:
    """Guards the guard: each tell is found, and asking the Metric is not one."""
    source = """
better = now > then if METRICS[name].higher_is_better else now < then
flags = {name: metric.higher_is_better for name, metric in METRICS.items()}
if name == "log_loss":
    better = then - now
limit = settings.at_least if higher else settings.at_most
worse = METRICS[name].regression(then, now) > settings.gate.max_regression
"""
    assert direction_tells(source) == [
        "line 2: reads higher_is_better",
        "line 3: reads higher_is_better",
        "line 4: compares with the metric name 'log_loss'",
        "line 6: picks at_least / at_most by a condition",
    ]
