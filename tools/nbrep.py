"""nbrep.py NB 'old' 'new' [...]: replace exact text in cell sources, keeping cell ids; each old must occur once in the notebook."""
import json
import sys
p = sys.argv[1]; pairs = sys.argv[2:]
nb = json.load(open(p))
for a, b in zip(pairs[::2], pairs[1::2]):
    hits = [c for c in nb["cells"] if a in "".join(c["source"])]
    n = sum("".join(c["source"]).count(a) for c in hits)
    assert n == 1, f"{n} matches for {a!r}"
    c = hits[0]; c["source"] = "".join(c["source"]).replace(a, b).splitlines(keepends=True)
json.dump(nb, open(p, "w"), indent=1, ensure_ascii=False); open(p, "a").write("\n")
