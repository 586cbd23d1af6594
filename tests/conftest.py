"""Fixtures shared by test files: a throwaway ECD data/results folder, and the benchmark scripts loaded as modules."""
import importlib.util
from pathlib import Path

import pytest


@pytest.fixture
def isolated_dirs(tmp_path, monkeypatch):
    "ECD_DATA_DIR and ECD_RESULTS_DIR in this test's tmp_path, one thread."
    monkeypatch.setenv("ECD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ECD_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("ECD_THREADS", "1")


@pytest.fixture
def load_bench():
    "`load_bench('bench_search')`: the script benchmarks/<name>.py as a module (its `main(argv)` callable)."
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "benchmarks" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    return load
