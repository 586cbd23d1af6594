"""ecd.retrieval / ecd.retrieval_data from outside the notebooks: MS MARCO preparation on files in the
official formats, and the CLI's one-line failure when the download cannot reach the network."""
import json
import os
import subprocess
import sys
from pathlib import Path

from ecd.retrieval_data import load_retrieval_data, prepare_msmarco

ROOT = Path(__file__).resolve().parents[1]


def _write_raw(raw: Path) -> Path:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "collection.tsv").write_text("0\tFirst\x07 passage,  with a bell.\n1\tSecond\r passage\n2\tThird one\n",
                                        encoding="utf-8")
    (raw / "queries.train.tsv").write_text("10\twhat is first\n11\tunjudged query\n", encoding="utf-8")
    (raw / "queries.dev.tsv").write_text("20\t second\tthing \n", encoding="utf-8")
    (raw / "qrels.train.tsv").write_text("10\t0\t0\t1\n", encoding="utf-8")
    (raw / "qrels.dev.tsv").write_text("20\t0\t1\t1\n", encoding="utf-8")
    (raw / "top1000.dev").write_text("20\t1\tsecond thing\tSecond passage\n20\t2\tsecond thing\tThird one\n",
                                     encoding="utf-8")
    return raw


def test_prepare_msmarco_formats(tmp_path):
    out = prepare_msmarco(_write_raw(tmp_path / "raw"), tmp_path / "out", build_sqlite=True)
    rows = [json.loads(l) for l in (out / "passages.jsonl").read_text().splitlines()]
    assert rows == [{"docid": 0, "text": "First passage, with a bell."}, {"docid": 1, "text": "Second passage"},
                    {"docid": 2, "text": "Third one"}]
    assert [json.loads(l) for l in (out / "queries_train.jsonl").read_text().splitlines()] == [
        {"qid": "10", "text": "what is first"}]                      # the unjudged query is dropped
    assert (out / "queries_dev.jsonl").read_text() == '{"qid": "20", "text": "second thing"}\n'
    assert (out / "qrels_train.tsv").read_text() == "10\t0\t1\n"
    assert (out / "qrels_dev.tsv").read_text() == "20\t1\t1\n"
    assert (out / "candidates_dev.tsv").read_text() == "20\t1\n20\t2\n"
    data = load_retrieval_data(out)
    assert data.passages.texts([2, 0]) == ["Third one", "First passage, with a bell."]
    data.passages.close()


def test_cli_offline_download_is_one_line(tmp_path):
    cfg = tmp_path / "m.yaml"
    cfg.write_text(f"run_name: offline_test\nartifacts_dir: {tmp_path / 'a'}\ndata:\n  dataset: msmarco\n"
                   f"  msmarco:\n    base_url: http://127.0.0.1:9/msmarcoranking\n")
    env = {**os.environ, "ECD_DATA_DIR": str(tmp_path / "data")}
    r = subprocess.run([sys.executable, "-m", "ecd.retrieval", "data", "--config", str(cfg)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    assert "http://127.0.0.1:9/msmarcoranking/collectionandqueries.tar.gz" in r.stderr and "manually" in r.stderr
