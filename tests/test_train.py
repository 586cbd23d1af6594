"Tests of ecd.train and ecd.student: config file = defaults, clear failures, determinism, resume."
from pathlib import Path

import numpy as np
import pytest

from ecd.config import load_yaml
from ecd.knn import exact_topk, l2_normalize
from ecd.train import TRAIN_DEFAULTS, ValData, check_amp, fit, load_train_config, lr_factor

ROOT = Path(__file__).resolve().parents[1]


def _toy(n=700, d=24, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(15, d)).astype(np.float32)
    x = l2_normalize(c[rng.integers(0, 15, n)] + 0.6 * rng.normal(size=(n, d)).astype(np.float32))
    tr, va = np.arange(500), np.arange(500, n)
    _, top = exact_topk(x[tr], x[tr], 40, exclude_ids=tr)
    _, truth = exact_topk(x, x[va], 10, exclude_ids=va)
    return x[tr], top, ValData(x, va, truth)


SMALL = ["model.type=mlp", "model.hidden=16", "model.out_dim=8", "train.steps=30", "train.batch_size=50",
         "train.warmup_steps=3", "train.hard_negative.pool_l=40", "train.hard_negative.tail_to=40",
         "train.hard_negative.per_anchor=4", "loss.listwise_random=16", "eval.every=15", "train.device=cpu",
         "train.threads=1", "model.dropout=0.1", "loss.queue_size=64"]


def test_default_yaml_equals_defaults():
    assert load_yaml(ROOT / "configs/train/default.yaml") == TRAIN_DEFAULTS


def test_unknown_key_and_bf16_on_mps_fail_clearly():
    with pytest.raises(ValueError, match="Did you mean 'train.batch_size'"):
        load_train_config(overrides=["train.batchsize=12"])
    with pytest.raises(ValueError, match="not supported on Apple MPS"):
        check_amp("bf16", "mps")
    with pytest.raises(ValueError, match="not supported on Apple MPS"):   # caught from the config, before any training
        load_train_config(overrides=["train.amp=bf16", "train.device=mps"])
    with pytest.raises(ValueError, match="on CPU set train.amp=bf16 or none"):
        load_train_config(overrides=["train.amp=fp16", "train.device=cpu"])


def test_cli_fails_with_message(capsys):
    from ecd.cli import main
    assert main(["train", "--run-id", "nope", "--override", "train.amp=bf16", "--override", "train.device=mps"]) == 2
    err = capsys.readouterr().err
    assert "MPS" in err and err.startswith("ecd train: error: ") and err.count("\n") == 1
    assert main(["train", "--run-id", "nope", "--override", "loss.tau_student=0.1"]) == 2
    assert "Unknown config key 'loss.tau_student'" in capsys.readouterr().err


def test_schedules():
    assert lr_factor(0, 10, "linear", 0) == 1.0 and lr_factor(5, 10, "linear", 0) == 0.5
    assert lr_factor(2, 10, "cosine", 4) == 0.75


def test_same_seed_same_metrics_and_resume(tmp_path):
    x, top, val = _toy()
    cfg = load_train_config(overrides=SMALL)
    a = fit(cfg, x, top, val, verbose=False)
    b = fit(cfg, x, top, val, verbose=False)
    va, vb = a.logs.filter(like="val_").to_numpy(), b.logs.filter(like="val_").to_numpy()
    np.testing.assert_array_equal(va, vb)
    c = fit(load_train_config(overrides=SMALL + ["train.seed=7"]), x, top, val, verbose=False)
    assert not np.array_equal(va, c.logs.filter(like="val_").to_numpy())
    fit(cfg, x, top, val, out_dir=tmp_path, verbose=False, stop_at=15)
    r = fit(cfg, x, top, val, out_dir=tmp_path, verbose=False, resume=True)
    np.testing.assert_array_equal(r.logs.filter(like="val_").to_numpy(), va)
    assert (tmp_path / "final.pt").exists()
    from ecd.student import write_train_figures            # the figures are the pipeline's, not the loop's
    write_train_figures(r, tmp_path, png=False)
    assert (tmp_path / "figures" / "learning_curve.html").exists()


def test_bad_targets():
    x, top, val = _toy()
    with pytest.raises(ValueError, match="teacher top-L"):
        fit(load_train_config(overrides=SMALL), x, top[:, :10], val, verbose=False)
