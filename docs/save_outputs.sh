#!/usr/bin/env bash
# Store fresh outputs in the notebooks for the docs site (every module page shows real outputs).
# Runs each notebook's cells (nbdev-test --save: outputs written back only when every cell passes), without progress
# bars or INFO log lines, drops empty execute_result outputs, then tools/nbclean.py. Usage: docs/save_outputs.sh [NB ...]
# (default: every nbs/[0-9]*.ipynb and nbs/index.ipynb). The docs hook also hides machine paths and warnings.
set -euo pipefail
cd "$(dirname "$0")/.."
export TQDM_DISABLE=1 ECD_PROGRESS=0 ECD_LOG_LEVEL=WARNING PYTHONWARNINGS=ignore
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" ECD_THREADS="${ECD_THREADS:-1}"
nbs=("$@")
[ ${#nbs[@]} -gt 0 ] || nbs=(nbs/[0-9]*.ipynb nbs/index.ipynb)
failed=()
for nb in "${nbs[@]}"; do
  echo "== $nb"
  if .venv/bin/nbdev-test --save "$nb"; then
    .venv/bin/python - "$nb" <<'PY'
import json, sys
p = sys.argv[1]
nb = json.load(open(p))
for c in nb["cells"]:
    if "outputs" in c:
        c["outputs"] = [o for o in c["outputs"] if not (o["output_type"] == "execute_result" and not o.get("data"))]
with open(p, "w") as f:
    json.dump(nb, f, indent=1, ensure_ascii=False)
    f.write("\n")
PY
    .venv/bin/python tools/nbclean.py "$nb"
  else
    failed+=("$nb")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "not saved (a cell failed): ${failed[*]}" >&2
  exit 1
fi
