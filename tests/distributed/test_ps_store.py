"""The ps task's variable store (the class Ray runs as an actor), called directly."""
from __future__ import annotations

import numpy as np

from jitflow.distributed.ps_actor import VariableStore


def test_pull_returns_only_initialized_variables() -> None:
    store = VariableStore("ps", 0)
    assert store.ping() == ("ps", 0)
    assert store.pull(["w"]) == {}
    store.push({"w": np.ones(3, np.float32)}, {})
    got = store.pull(["w", "b"])
    assert list(got) == ["w"] and not got["w"].flags.writeable


def test_deltas_add_to_the_current_value_keeping_dtype() -> None:
    store = VariableStore("ps", 0)
    store.push({"w": np.zeros(2, np.float32), "step": np.array(5, np.int64)}, {})
    before = store.pull(["w"])["w"]
    store.push({}, {"w": np.array([1.0, 2.0], np.float32), "step": np.array(1, np.int64)})
    store.push({}, {"w": np.array([0.5, 0.5], np.float32), "step": np.array(1, np.int64)})
    got = store.pull(["w", "step"])
    np.testing.assert_array_equal(got["w"], [1.5, 2.5])
    assert got["w"].dtype == np.float32 and got["step"] == 7 and got["step"].dtype == np.int64
    np.testing.assert_array_equal(before, [0, 0])  # earlier readers keep the value they read
    assert store.stats() == {"variables": 2, "bytes": 16, "pushes": 3}


def test_delta_for_a_missing_or_reshaped_variable_is_dropped() -> None:
    store = VariableStore("ps", 0)
    store.push({"w": np.zeros(2, np.float32)}, {})
    assert store.push({}, {"gone": np.ones(2), "w": np.ones(3, np.float32)}) == ["gone", "w"]
    np.testing.assert_array_equal(store.pull(["w"])["w"], [0, 0])
