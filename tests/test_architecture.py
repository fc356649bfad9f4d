"""The ground floor: ``common/`` imports no app of Herald (nor the API layer, the project
settings or the tests), at module level or inside a function, so every app can build on it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMON = ROOT / "common"


def _first_party() -> set[str]:
    """Herald's own top-level packages (its apps, ``api``, ``config``, ``tests``…)."""
    return {path.parent.name for path in ROOT.glob("*/__init__.py")}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every absolute import in the module, wherever it is (functions, ``TYPE_CHECKING``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_common_imports_no_app():
    forbidden = _first_party() - {"common"}
    assert {"accounts", "api", "comms", "guests", "webhooks"} <= forbidden
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted(COMMON.rglob("*.py"))
        for line, module in _imports(path)
        if module.split(".")[0] in forbidden
    ]
    assert offending == []


def test_the_check_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from accounts.models import ApiKey\n    import comms.models\n")
    assert _imports(module) == [(2, "accounts.models"), (3, "comms.models")]


# --- the rest of the shape (issue 16's measures) --------------------------------------------

# The engine: what sends, renders, tells customers and checks domains. Its api/ and admin
# modules are front doors and may know the front ends; the rest must not.
ENGINE = ("comms", "templates", "webhooks", "domains")
# The front ends: they build messages and hand them to the engine.
FRONT_ENDS = ("guests", "emails", "multichannel", "notifications", "contacts")


def _modules() -> dict[str, Path]:
    """Herald's own modules outside tests and migrations, by dotted name."""
    found = {}
    for package in _first_party() - {"tests"}:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _graph() -> dict[str, set[str]]:
    """Module → the Herald modules it imports (anywhere in it, relative imports resolved)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    kept = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*kept, base] if base else kept)
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components (Tarjan, iterative) of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_no_import_cycle_of_more_than_two_modules():
    """A services ↔ tasks pair is fine; a ring through three modules is a knot."""
    assert [sorted(c) for c in _cycles(_graph()) if len(c) > 2] == []


def test_the_engine_imports_no_front_end():
    def is_engine(module: str) -> bool:
        parts = module.split(".")
        return parts[0] in ENGINE and not any(
            part in ("api", "admin") or part.startswith("admin_") for part in parts[1:])

    offending = sorted(f"{module} imports {target}" for module, targets in _graph().items()
                       if is_engine(module) for target in targets
                       if target.split(".")[0] in FRONT_ENDS)
    assert offending == []


def test_nothing_branches_on_the_database_vendor():
    """PostgreSQL is the only database: no second path to keep in step."""
    offending = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in [*_modules().values(), *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]
        if path.resolve() != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ("connection.vendor" in line and any(op in line for op in ("==", "!=", " in ")))
        or "backends.sqlite3" in line
    ]
    assert offending == []


def test_the_cycle_finder_finds_rings():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": {"a"}}) == [{"a", "b"}]


# --- only the engine makes deliveries (issue 16 part 5) --------------------------------------

def _delivery_writes(path: Path) -> list[int]:
    """Lines that build or insert ``Delivery`` rows: ``Delivery(…)``,
    ``Delivery.objects.create|bulk_create|get_or_create|update_or_create(…)``, and
    ``rows_insert`` / ``insert_together`` given ``Delivery`` itself."""
    def named(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id == "Delivery") or (
            isinstance(node, ast.Attribute) and node.attr == "Delivery")

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if named(func) or (
                isinstance(func, ast.Attribute)
                and func.attr in ("create", "bulk_create", "get_or_create", "update_or_create")
                and isinstance(func.value, ast.Attribute) and func.value.attr == "objects"
                and named(func.value.value)) or (
                getattr(func, "id", getattr(func, "attr", None)) in ("rows_insert",
                                                                      "insert_together")
                and node.args and named(node.args[0])):
            found.append(node.lineno)
    return found


def test_only_the_engine_makes_deliveries():
    """Front ends build ``comms.messages.Message``s and hand them to ``comms.services`` /
    ``comms.immediate``; no module outside ``comms/`` (and the tests) makes a Delivery row."""
    offending = [f"{path.relative_to(ROOT)}:{line}"
                 for name, path in sorted(_modules().items()) if name.split(".")[0] != "comms"
                 for line in _delivery_writes(path)]
    assert offending == []


def test_the_delivery_check_sees_every_way_of_making_one(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "Delivery(account=a)\nmodels.Delivery()\nDelivery.objects.create(a=1)\n"
        "Delivery.objects.bulk_create([])\nrows_insert(Delivery, (), [])\n"
        "inserts.insert_together(Delivery)\nDelivery.objects.filter(a=1)\n"
        "rows_insert(Attendee, (), [])\n")
    assert _delivery_writes(module) == [1, 2, 3, 4, 5, 6]
