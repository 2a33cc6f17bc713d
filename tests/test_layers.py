"""The import graph runs one way (docs/STYLE, README's map): data, models and losses at the bottom;
``dgnet.train`` and ``dgnet.eval`` side by side, neither importing the other; the stage runs
(``dgnet.stages``) above both; reports and tracking on top, never imported from below.

No two modules of ``dgnet/`` import each other, directly or round a longer circle (a circle is
cut by moving the piece both sides need down into a module of its own).

Read from the source with ``ast`` (every ``import``, also those inside functions), so no module is
imported and the test needs no torch.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOWER = ("dgnet.data", "dgnet.models", "dgnet.losses", "dgnet.train", "dgnet.eval", "dgnet.fidelity",
         "dgnet.checkpoint", "dgnet.runlog", "dgnet.config", "dgnet.io", "dgnet.errors", "dgnet.progress")
UPPER = ("dgnet.reports", "dgnet.tracking", "dgnet.stages")
BOTTOM = ("dgnet.data", "dgnet.models", "dgnet.losses")
BESIDE = ("dgnet.train", "dgnet.eval")  # neither imports the other; the bottom imports neither


def _module(path: Path, package_root: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _inside(name: str, area: str) -> bool:
    return name == area or name.startswith(area + ".")


def _imports(path: Path, module: str) -> list[tuple[int, list[str]]]:
    """``(line, imported names)`` of every import statement in ``path``, inside functions too;
    ``from dgnet import x`` names both ``dgnet`` and ``dgnet.x``, relative imports are made absolute."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.append((node.lineno, [alias.name for alias in node.names]))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)] + ([base] if base else []))
            found.append((node.lineno, [base] + [f"{base}.{alias.name}" for alias in node.names]))
    return found


def _forbidden(module: str, name: str) -> bool:
    if any(_inside(name, upper) for upper in UPPER):
        return True
    if any(_inside(module, b) for b in BOTTOM):
        return any(_inside(name, b) for b in BESIDE)
    return any(_inside(module, a) and _inside(name, b) for a in BESIDE for b in BESIDE if a != b)


def violations(package_root: Path) -> list[str]:
    """Every import that runs against the layers, as ``file:line: a imports b``."""
    bad = []
    for path in sorted(package_root.rglob("*.py")):
        module = _module(path, package_root)
        area = next((a for a in LOWER if _inside(module, a)), None)
        if area is None:
            continue
        for line, names in _imports(path, module):
            wrong = [name for name in names if _forbidden(module, name)]
            if wrong:
                bad.append(f"{path.relative_to(package_root.parent)}:{line}: {module} imports {wrong[-1]}")
    return bad


def import_graph(package_root: Path) -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package it imports (anywhere in its source)."""
    paths = {_module(path, package_root): path for path in sorted(package_root.rglob("*.py"))}
    graph = {}
    for module, path in paths.items():
        targets = set()
        for _, names in _imports(path, module):
            for name in names:
                parts = name.split(".")
                # the longest prefix that is a module: "dgnet.config.Config" -> dgnet.config
                found = next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in paths),
                             None)
                if found is not None and found != module and found != package_root.name:
                    targets.add(found)
        graph[module] = targets
    return graph


def circles(package_root: Path) -> list[list[str]]:
    """The import circles among the package's modules, each as ``[a, b, ..., a]``, one per strongly
    connected group of modules (Tarjan's algorithm, then a shortest loop through the group's first module)."""
    graph = import_graph(package_root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    found = []
    for group in sorted(groups):
        start, members = group[0], set(group)
        paths, seen = [[start]], {start}
        while paths:  # breadth first: the shortest way back to start inside the group
            path = paths.pop(0)
            nxt_all = sorted(graph[path[-1]] & members)
            if start in nxt_all:
                found.append(path + [start])
                break
            for nxt in nxt_all:
                if nxt not in seen:
                    seen.add(nxt)
                    paths.append(path + [nxt])
    return found


def test_lower_layers_import_neither_each_other_nor_the_layers_above():
    assert violations(ROOT / "dgnet") == []


def test_the_check_sees_a_bad_import_anywhere_in_a_module(tmp_path):
    """A copy of the package with an upward import inside a function and one across, both found."""
    copy = tmp_path / "dgnet"
    shutil.copytree(ROOT / "dgnet", copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "train" / "loop.py", "a") as fh:
        fh.write("\n\ndef _bad():\n    from dgnet.eval import evaluate_model\n    from dgnet import tracking\n")
    with open(copy / "eval" / "ranking.py", "a") as fh:
        fh.write("\nfrom ..stages import runs\n")
    with open(copy / "data" / "dataset.py", "a") as fh:
        fh.write("\nimport dgnet.reports.tables\nfrom dgnet.train import batches\n")
    found = violations(copy)
    assert any("dgnet.train.loop imports dgnet.eval.evaluate_model" in v for v in found)
    assert any("dgnet.train.loop imports dgnet.tracking" in v for v in found)
    assert any("dgnet.eval.ranking imports dgnet.stages.runs" in v for v in found)
    assert any("dgnet.data.dataset imports dgnet.reports.tables" in v for v in found)
    assert any("dgnet.data.dataset imports dgnet.train.batches" in v for v in found)
    assert len(found) == 5, found


def test_no_import_circles_inside_dgnet():
    assert circles(ROOT / "dgnet") == []


def test_the_check_finds_a_circle_made_inside_a_function(tmp_path):
    """A copy of the package where two lower modules import each other, one of them only inside a
    function, and a three-module circle through ``from dgnet import x``: both found, nothing else."""
    copy = tmp_path / "dgnet"
    shutil.copytree(ROOT / "dgnet", copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "locking.py", "a") as fh:
        fh.write("\n\ndef _late():\n    from dgnet.progress import bar\n")
    with open(copy / "progress.py", "a") as fh:
        fh.write("\nfrom dgnet.locking import exclusive_lock\n")
    with open(copy / "runlog.py", "a") as fh:
        fh.write("\nfrom dgnet import losses\n")
    with open(copy / "losses.py", "a") as fh:
        fh.write("\nfrom . import summary\n")
    with open(copy / "summary.py", "a") as fh:
        fh.write("\nimport dgnet.runlog\n")
    assert circles(copy) == [["dgnet.locking", "dgnet.progress", "dgnet.locking"],
                             ["dgnet.losses", "dgnet.summary", "dgnet.runlog", "dgnet.losses"]]


def test_every_dvc_stage_lists_code_that_exists():
    """A dependency on a moved or deleted file would make DVC fail (or silently stop watching the code)."""
    import yaml

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for dep in stage.get("do", stage).get("deps", []):
            if dep.startswith(("dgnet/", "pipelines/")):
                assert (ROOT / dep).exists(), (name, dep)
