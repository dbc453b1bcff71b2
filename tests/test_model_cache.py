"""The core's model cache: one instance per load key, parameters per use, a lock per model, clear."""
import threading

import pytest
import torch

from vfi_core.errors import ParameterError, WeightsError
from vfi_core.model_cache import ModelCache


def test_models_are_shared_parameters_apply_per_use_and_the_oldest_goes():
    cache = ModelCache(capacity=2)
    first = cache.get("flow-asb", device="cpu")
    assert cache.get("flow-asb", device="cpu") is first and len(cache) == 1
    with cache.use("flow-asb", {"asymmetry": 0.5}, device="cpu") as model:
        assert model is first and model.params["asymmetry"] == 0.5
    with cache.use("flow-asb", {}, device="cpu") as model:
        assert model.params["asymmetry"] == 0.0  # unnamed parameters are back at their defaults
    with pytest.raises(ParameterError, match="asymmetry"):
        with cache.use("flow-asb", {"asymmetry": 3.0}, device="cpu"):
            pass
    cache.get("svmv", device="cpu")
    cache.get("flow-asb", device="cpu", dtype=torch.float32)  # another key: the least recent (first) goes
    assert len(cache) == 2 and cache.get("flow-asb", device="cpu") is not first
    assert cache.clear() == 2 and len(cache) == 0


def test_a_model_in_use_waits_for_its_user():
    cache = ModelCache()
    order = []
    with cache.use("flow-asb", {}, device="cpu"):
        other = threading.Thread(target=lambda: cache.use("flow-asb", {}, device="cpu").__enter__() and order.append("2"))
        other.start()
        other.join(timeout=0.5)
        assert other.is_alive()  # blocked while the first job holds the model
        order.append("1")
    other.join(timeout=10)
    assert order == ["1", "2"]


def test_a_weight_file_removed_is_noticed(tmp_path, monkeypatch):
    cache = ModelCache()
    cache.get("svmv", device="cpu")
    monkeypatch.setattr("vfi_core.registry.WEIGHTS_DIR", tmp_path)
    with pytest.raises(WeightsError, match="svmv.safetensors"):
        cache.get("svmv", device="cpu")
