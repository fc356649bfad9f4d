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
