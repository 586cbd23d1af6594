"""The layers of ../shared/DESIGN.md, read from the imports of every module of `ecd/` (module level and inside
functions): no cycle, no import up a layer, no private name used across modules, the training loop knowing no codec
and no figure."""
from __future__ import annotations

import ast
from pathlib import Path

import sys

import pytest

PKG = Path(__file__).resolve().parents[1] / "ecd"

# DESIGN.md's four layers, then the CLI on top; inside the core, a module imports only modules listed before it.
CORE = ["core", "config", "data", "knn", "metrics", "codecs", "models", "losses", "train", "learned", "evaluate",
        "store", "figures", "charts"]
LAYERS = {**{m: 1 for m in CORE},
          **{m: 2 for m in ("runs", "student", "quickstart", "sweep", "export", "deploy")},
          **{m: 3 for m in ("plots", "explore", "compare")},
          **{m: 4 for m in ("apps",)},
          "cli": 5}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def ecd_imports(path: Path) -> list[tuple[str, list[str], int]]:
    "(imported ecd module, names taken from it, line) for every import of `path`, relative ones resolved."
    me = module_name(path).split(".")
    pkg = me if path.name == "__init__.py" else me[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "ecd"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[:len(pkg) - node.level + 1] if node.level > 1 else pkg
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "ecd":
                continue
            names = [a.name for a in node.names]
            if node.module is None or mod in SUBMODULES:                   # `from . import x`: x is a module
                subs = [f"{mod}.{n}" for n in names if f"{mod}.{n}" in SUBMODULES]
                if subs:
                    out += [(s, [], node.lineno) for s in subs]
                    continue
            out.append((mod, names, node.lineno))
    return out


FILES = sorted(p for p in PKG.rglob("*.py") if p.name != "_modidx.py")
SUBMODULES = {module_name(p) for p in FILES}


def unit(mod: str) -> str:
    "The DESIGN unit of an ecd module: `ecd.sweep.combos` -> `sweep`, `ecd.apps.cascade` -> `apps`."
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else "ecd"


def graph() -> dict[str, set[str]]:
    g: dict[str, set[str]] = {}
    for p in FILES:
        me = module_name(p)
        g[me] = {m for m, _, _ in ecd_imports(p) if m != me and m in SUBMODULES}
    return g


def test_every_module_has_a_layer():
    missing = sorted({unit(m) for m in SUBMODULES} - set(LAYERS) - {"ecd"})
    assert not missing, f"modules with no layer in DESIGN.md: {missing}; add them to DESIGN.md and to LAYERS here"


def test_no_import_up_a_layer():
    bad = []
    for p in FILES:
        me = module_name(p)
        if unit(me) == "ecd":
            continue
        for mod, _, line in ecd_imports(p):
            a, b = unit(me), unit(mod)
            if a == b or b == "ecd":
                continue
            if LAYERS[b] > LAYERS[a] or (LAYERS[a] == LAYERS[b] == 1 and CORE.index(b) > CORE.index(a)):
                bad.append(f"{p.relative_to(PKG.parent)}:{line} {me} imports {mod}")
    assert not bad, "imports up a layer (DESIGN.md):\n" + "\n".join(bad)


def test_no_cycle():
    g = graph()
    seen, stack, cycles = set(), [], []

    def visit(n):
        if n in stack:
            cycles.append(stack[stack.index(n):] + [n])
            return
        if n in seen:
            return
        seen.add(n)
        stack.append(n)
        for m in sorted(g.get(n, ())):
            visit(m)
        stack.pop()

    for n in sorted(g):
        visit(n)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_name_across_modules():
    bad = []
    for p in FILES:
        me = module_name(p)
        for mod, names, line in ecd_imports(p):
            if mod == me:
                continue
            bad += [f"{p.relative_to(PKG.parent)}:{line} {me} uses {mod}.{n}" for n in names
                    if n.startswith("_") and not n.startswith("__")]
    assert not bad, "private names used across modules (make them public or move them):\n" + "\n".join(bad)


@pytest.mark.parametrize("forbidden", ["ecd.codecs", "ecd.figures", "ecd.learned", "ecd.store"])
def test_the_training_loop_knows_no_codec_and_no_figure(forbidden):
    imported = {m for m, _, _ in ecd_imports(PKG / "train.py")}
    assert forbidden not in imported


def test_the_checker_reads_real_imports(tmp_path, monkeypatch):
    "Relative, absolute and in-function imports are all seen, so a violation cannot hide from the checks above."
    assert any(m == "ecd.knn" for m, _, _ in ecd_imports(PKG / "codecs.py"))    # `from .knn import ...` resolved
    f = tmp_path / "ecd" / "knn.py"
    f.parent.mkdir()
    f.write_text("from .plots import pareto_mask\ndef f():\n    from ecd.codecs import _private\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", tmp_path / "ecd")
    got = ecd_imports(f)
    assert ("ecd.plots", ["pareto_mask"], 1) in got and ("ecd.codecs", ["_private"], 3) in got
