"""The layout's promises that import-linter cannot see: research/ is scripts,
not a package, so its imports are read here; every module stays readable."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The surfaces a script outside the package may use: the public model and,
#: for studying and retraining it, the training surface.
PUBLIC_MODULES = ("regression_model", "regression_model.training")
#: About 400 lines: a module a newcomer can read in one sitting.
MAX_MODULE_LINES = 420


def package_imports(source: str) -> list[tuple[str, str]]:
    """(module, name) for every import of the package in ``source``."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("regression_model"):
            found += [(node.module or "", alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [
                (alias.name, "")
                for alias in node.names
                if alias.name.startswith("regression_model")
            ]
    return found


def test_package_imports_are_read_from_source() -> None:
    source = (
        "import regression_model.scoring.tables\n"
        "from regression_model.training import evaluate\n"
        "def f():\n    from regression_model.data import load_dataset\n"
    )
    assert package_imports(source) == [
        ("regression_model.scoring.tables", ""),
        ("regression_model.training", "evaluate"),
        ("regression_model.data", "load_dataset"),
    ]


def test_research_uses_public_names_only() -> None:
    scripts = sorted((ROOT / "research").glob("*.py"))
    assert scripts, "no research scripts found"
    internal = []
    for script in scripts:
        for module, name in package_imports(script.read_text(encoding="utf-8")):
            public = module in PUBLIC_MODULES and name in importlib.import_module(module).__all__
            if not public:
                internal.append(f"{script.name}: {module} {name}".strip())
    assert internal == [], "research/ imports package internals:\n" + "\n".join(internal)


def test_modules_stay_readable() -> None:
    long = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for folder in ("regression_model", "api/app")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    assert long == [], "modules over ~400 lines (split them by job):\n" + "\n".join(long)
