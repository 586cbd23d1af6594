"""The frontier bench end to end on a small synthetic run: classic codecs, learned codes started from them (each
family), the table, the two-stage row, the JSON, and the exit status that names missed bars."""
import json

import pytest


pytestmark = pytest.mark.usefixtures("isolated_dirs")


def test_bench_frontier_small(tmp_path, capsys, load_bench):
    out = tmp_path / "f.json"
    rc = load_bench("bench_frontier").main(["--dataset", "synthetic:3000x32", "--max-items", "3000", "--queries", "50", "--budgets", "4,32",
                        "--classic", "pq:4x256,rq:4x8,opq:32x16", "--learned", "lrq:4x8,lopq:32x16", "--steps", "5",
                        "--json", str(out)])
    text = capsys.readouterr().out
    assert rc in (0, 1) and "best_classic" in text and "two-stage:" in text
    j = json.loads(out.read_text())
    names = {r["name"] for r in j["rows"]}
    assert {"pq_m4_k256", "rq_m4_b8", "lrq_m4_b8", "opq_m32_k16", "lopq_m32_k16"} <= names
    table = {t["budget_B"]: t for t in j["table"]}
    assert set(table) == {4, 32} and table[4]["best_learned"] == "lrq_m4_b8"
    lrq = [r for r in j["rows"] if r["name"] == "lrq_m4_b8"][0]
    rq = [r for r in j["rows"] if r["name"] == "rq_m4_b8"][0]
    assert lrq["fit_s"] >= rq["fit_s"]                                  # the classic start's time is counted in
    if rc == 1:
        assert "BAR MISSED" in text


def test_bench_frontier_unknown_learned(capsys, load_bench):
    with pytest.raises(SystemExit) as e:
        load_bench("bench_frontier").main(["--dataset", "synthetic:500x8", "--max-items", "500", "--learned", "xrq:4x8"])
    assert e.value.code == 2 and "unknown learned code" in capsys.readouterr().err
