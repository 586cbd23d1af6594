"""Every config shipped in configs/ loads through its module's checked loader (no unknown key, valid values)."""
from pathlib import Path

import pytest

from ecd.apps.retrieval import load_retrieval_config
from ecd.config import load_yaml
from ecd.sweep import SWEEP_DEFAULTS, SweepConfig, combo_train_config, expand_grid, load_sweep_config
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
    cfg = load_sweep_config(path)
    assert isinstance(cfg, SweepConfig) and SweepConfig.from_dict(cfg.to_dict()) == cfg
    s = cfg.sweep
    combos = expand_grid(s.grid, s.fixed)
    assert combos
    if s.kind in ("train", "dim_out"):
        for c in combos:  # every combo resolves to a valid train config
            combo_train_config({"train_config": s.train_config, **c})


def test_sweep_default_yaml_holds_the_defaults():
    "One default per knob: every knob configs/sweep/default.yaml sets (but its grid and fixed combo parameters) is the schema's default."
    written = {k: v for k, v in load_yaml(ROOT / "configs/sweep/default.yaml")["sweep"].items() if k not in ("grid", "fixed")}
    assert written == {k: SWEEP_DEFAULTS["sweep"][k] for k in written}
    assert set(SWEEP_DEFAULTS["sweep"]) - set(written) <= {"run_id", "train_config", "grid", "fixed"}


def test_train_config_loads():
    cfg = load_train_config(ROOT / "configs/train/default.yaml")
    assert cfg.model.out_dim > 0 and cfg.eval.png is True
