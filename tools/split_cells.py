"""Split exported notebook cells that hold several definitions into one cell per definition (the fastcore shape).

    .venv/bin/python tools/split_cells.py nbs/05_codecs.ipynb [...] [--min-lines 40]

A `#| export` code cell longer than --min-lines with two or more top-level `def`/`class` is cut before each
definition; statements between two definitions (a constant, a registry) go with the definition after them, the
statements before the first definition (imports, constants) stay in the first cell. Every new cell carries the same
`#|` directives; the tests that follow the cell stay where they are. Then run `nbdev-export` and `tools/nbclean.py`.
"""
from __future__ import annotations

import argparse
import ast
import json
import uuid
from pathlib import Path


SMALL = 10   # lines: definitions this short may share a cell with a short neighbour


def directives(lines: list[str]) -> tuple[list[str], list[str]]:
    "The leading `#|` lines of a cell and the rest."
    i = 0
    while i < len(lines) and lines[i].startswith("#|"):
        i += 1
    return lines[:i], lines[i:]


def groups(body: list[str]) -> list[tuple[int, int]]:
    "Line ranges [start, end) of `body`: one per top-level definition (with the statements before it)."
    tree = ast.parse("".join(body))
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    starts = []
    pending = None
    for node in tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        if pending is None:
            pending = first
        if isinstance(node, defs):
            starts.append(pending)
            pending = None
    if len(starts) < 2:
        return [(0, len(body))]
    starts[0] = 0
    cuts = []
    for s in starts:                      # take the comments and blank lines just above a definition along with it
        while s > 0 and (body[s - 1].strip().startswith("#") and not body[s - 1].startswith("#|")):
            s -= 1
        cuts.append(s)
    cuts[0] = 0
    spans = [(a, b) for a, b in zip(cuts, cuts[1:] + [len(body)])]
    merged = [spans[0]]
    for a, b in spans[1:]:                # small neighbours (a few one-line classes, tiny helpers) share a cell
        pa, pb = merged[-1]
        if pb - pa <= SMALL and b - a <= SMALL:
            merged[-1] = (pa, b)
        else:
            merged.append((a, b))
    return merged


def split_cell(cell: dict, min_lines: int) -> list[dict]:
    src = "".join(cell["source"])
    lines = src.splitlines(keepends=True)
    head, body = directives(lines)
    if "#| export" not in "".join(head) or len(lines) <= min_lines:
        return [cell]
    try:
        spans = groups(body)
    except SyntaxError:
        return [cell]
    if len(spans) < 2:
        return [cell]
    out = []
    for i, (a, b) in enumerate(spans):
        part = body[a:b]
        while part and not part[-1].strip():
            part = part[:-1]
        while part and not part[0].strip():
            part = part[1:]
        if not part:
            continue
        part[-1] = part[-1].rstrip("\n")
        new = {"cell_type": "code", "execution_count": None, "id": cell["id"] if i == 0 else uuid.uuid4().hex[:8],
               "metadata": {}, "outputs": [], "source": head + part}
        out.append(new)
    return out


def split_notebook(path: Path, min_lines: int) -> int:
    nb = json.loads(path.read_text())
    cells, n = [], 0
    for c in nb["cells"]:
        parts = split_cell(c, min_lines) if c["cell_type"] == "code" else [c]
        n += len(parts) - 1
        cells += parts
    if n:
        nb["cells"] = cells
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return n


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--min-lines", type=int, default=40)
    a = ap.parse_args()
    for p in a.notebooks:
        print(f"{p}: {split_notebook(Path(p), a.min_lines)} new cells")
