"""Every config shipped in configs/ loads through its module's checked loader (no unknown key, valid values)."""
from pathlib import Path

import pytest

from ecd.apps.retrieval import load_retrieval_config
from ecd.sweep import combo_train_config, expand_grid, load_sweep_config
from ecd.train import load_train_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((ROOT / "configs/retrieval").glob("*.yaml")), ids=lambda p: p.name)
def test_retrieval_configs_load(path):
    cfg = load_retrieval_config(path)
    assert cfg.run_id
    assert set(cfg.train.modes) <= {"dense_baseline", "matryoshka"}


@pytest.mark.parametrize("path", sorted((ROOT / "configs/sweep").glob("*.yaml")), ids=lambda p: p.name)
def test_sweep_configs_load_and_expand(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # train_config paths in the sweep files are relative to the repository
    cfg = load_sweep_config(path)["sweep"]
    combos = expand_grid(cfg["grid"], cfg.get("fixed"))
    assert combos
    if cfg["kind"] in ("train", "dim_out"):
        for c in combos:  # every combo resolves to a valid train config
            combo_train_config({"train_config": cfg.get("train_config"), **c})


def test_train_config_loads():
    cfg = load_train_config(ROOT / "configs/train/default.yaml")
    assert cfg.model.out_dim > 0 and cfg.eval.png is True
