"Tests of ecd.models: PCA start, nested prefixes, config, checkpoints, numpy export."
import numpy as np
import pytest
import torch

from ecd.models import (LinearProjector, ResidualMLPAdaptor, build_model, export_npz, load_model_from_checkpoint,
                        load_npz, pca_components)


@pytest.fixture(scope="module")
def x():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(400, 24)) * np.linspace(4, 0.1, 24)
    return (base @ np.linalg.qr(rng.normal(size=(24, 24)))[0] + 0.7).astype(np.float32)


def test_pca_init_matches_numpy_svd(x):
    m = LinearProjector(24, 6, normalize=False).init_pca(x)
    _, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    ref = (x - x.mean(0)) @ vt[:6].T
    y = m.transform(x)
    signs = np.sign((y * ref).sum(0))
    np.testing.assert_allclose(y, ref * signs, atol=1e-3)
    mean, comps, var = pca_components(x, 6)
    np.testing.assert_allclose(comps @ comps.T, np.eye(6), atol=1e-5)
    assert (np.diff(var) <= 0).all()


def test_mlp_starts_as_pca_and_prefixes_renormalised(x):
    torch.manual_seed(0)
    lin = LinearProjector(24, 8, nested_dims=[4, 8]).init_pca(x)
    mlp = ResidualMLPAdaptor(24, 32, 8, n_layers=2, nested_dims=[4, 8]).init_pca(x)
    np.testing.assert_allclose(mlp.transform(x), lin.transform(x), atol=1e-5)
    y4 = mlp.transform(x, dim=4)
    np.testing.assert_allclose(np.linalg.norm(y4, axis=1), 1.0, atol=1e-5)
    full = lin.transform(x)  # normalised 8-d; its renormalised prefix must equal the 4-d output
    ref = full[:, :4] / np.linalg.norm(full[:, :4], axis=1, keepdims=True)
    np.testing.assert_allclose(y4, ref, atol=1e-5)
    with pytest.raises(ValueError, match="dim=9"):
        mlp.transform(x, dim=9)


def test_gradients_flow(x):
    m = build_model({"type": "mlp", "out_dim": 6, "hidden": 16}, x_train=x)
    m(torch.from_numpy(x[:32]), dim=3).pow(3).sum().backward()
    assert m.out.weight.grad.abs().sum() > 0
    assert m.projector.proj.weight.grad.abs().sum() > 0


def test_build_model_deterministic_and_errors(x):
    cfg = {"type": "mlp", "out_dim": 6, "hidden": 16, "n_layers": 2, "dropout": 0.1, "nested_dims": [3, 6]}
    sd = []
    for _ in range(2):
        torch.manual_seed(123)
        sd.append(build_model(cfg, in_dim=24).state_dict())
    assert all(torch.equal(sd[0][k], sd[1][k]) for k in sd[0])
    with pytest.raises(ValueError, match="did you mean 'dropout'"):
        build_model({"type": "mlp", "out_dim": 6, "dropuot": 0.1}, in_dim=24)
    with pytest.raises(ValueError, match="Unknown model type"):
        build_model({"type": "rnn", "out_dim": 6}, in_dim=24)


@pytest.mark.parametrize("cfg", [
    {"type": "linear", "out_dim": 6, "bias": True, "nested_dims": [3, 6]},
    {"type": "mlp", "out_dim": 6, "hidden": 16, "n_layers": 2, "activation": "gelu"},
    {"type": "mlp", "out_dim": 6, "hidden": 16, "activation": "relu", "normalize": False},
])
def test_npz_export_matches_torch(tmp_path, x, cfg):
    torch.manual_seed(5)
    m = build_model(cfg, x_train=x)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    split = {"train": np.arange(300), "val": np.arange(300, 350), "test": np.arange(350, 400)}
    p = export_npz(m, tmp_path / "compressor_model.npz", {"seed": 42, "split": split})
    npm = load_npz(p)
    np.testing.assert_allclose(npm.transform(x), m.transform(x), atol=1e-5)
    np.testing.assert_allclose(npm.transform(x, dim=3), m.transform(x, dim=3), atol=1e-5)
    np.testing.assert_array_equal(npm.meta["split"]["test"], split["test"])
    assert npm.meta["seed"] == 42
    m2 = load_model_from_checkpoint({"model": m.state_for_checkpoint()})
    np.testing.assert_allclose(m2.transform(x), m.transform(x), atol=1e-6)
