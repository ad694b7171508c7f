"""The lightonml shim's objects survive pickle, copy, scikit-learn's clone and GridSearchCV (issue 17, point 1)."""

import copy
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from opu_hal.compat.lightonml import OPU, OPUMap, TorchOPUMap

IDEAL = "emu://?fidelity=ideal&seed=3"


def _bits(n: int = 6, f: int = 40, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=(n, f), dtype=np.uint8)


@pytest.mark.parametrize("duplicate", [lambda o: pickle.loads(pickle.dumps(o)), copy.deepcopy])
def test_a_fitted_opu_pickles_and_reopens_with_its_fit(duplicate):
    x = _bits()
    opu = OPU(n_components=30, device=IDEAL, rescale="norm")
    opu.fit1d(x)
    expected = np.asarray(opu.transform(x))
    again = duplicate(opu)
    assert again.device is not opu.device and again.device.device == opu.device.device
    assert again.rescale is opu.rescale and again.n_components == 30
    np.testing.assert_array_equal(np.asarray(again.transform(x)), expected)
    opu.close()
    again.close()


def test_an_unfitted_closed_opu_pickles_and_stays_unfitted():
    opu = OPU(n_components=30, device=IDEAL, open_at_init=False)
    again = pickle.loads(pickle.dumps(opu))
    assert not again.device.backend.is_open
    with pytest.raises(Exception, match="Call fit1d or fit2d before transform"):
        again.transform(_bits())


def test_opumap_is_a_module_level_class_that_clones():
    opumap = OPUMap(n_components=30, device=IDEAL, verbose_level=-1)
    assert OPUMap.__qualname__ == "OPUMap" and OPUMap.__module__ == "opu_hal.compat.lightonml"
    twin = clone(opumap)
    assert twin.get_params() == opumap.get_params()
    assert twin.get_params()["device"] == IDEAL and twin.get_params()["opu"] is None
    x = _bits()
    np.testing.assert_array_equal(twin.fit_transform(x), opumap.fit_transform(x))
    assert twin.opu is not opumap.opu
    twin.close()
    opumap.close()


def test_opumap_with_a_given_opu_clones_to_its_own_device():
    opu = OPU(n_components=30, device=IDEAL)
    opumap = OPUMap(n_components=30, opu=opu)
    assert opumap.opu is opu
    twin = clone(opumap)
    assert twin.opu is not opu and twin.opu.device.device == opu.device.device
    opu.close()
    twin.close()


def test_a_fitted_opumap_pickles_with_its_fit():
    x = _bits()
    opumap = OPUMap(n_components=30, device=IDEAL).fit(x)
    expected = opumap.transform(x)
    again = pickle.loads(pickle.dumps(opumap))
    assert again.fitted
    np.testing.assert_array_equal(again.transform(x), expected)
    opumap.close()
    again.close()


def test_torch_opumap_accepts_device_and_pickles():
    x = torch.from_numpy(_bits())
    layer = TorchOPUMap(n_components=30, device=IDEAL, seed=None)
    assert TorchOPUMap.__qualname__ == "TorchOPUMap" and TorchOPUMap.__module__ == "opu_hal.compat.lightonml"
    layer.fit(x)
    expected = layer(x)
    again = pickle.loads(pickle.dumps(layer))
    torch.testing.assert_close(again(x), expected)
    layer.close()
    again.close()


def _digits():
    digits = load_digits()
    X = (digits.data[:240] > 7).astype(np.uint8)  # binary, as a lightonml tutorial encodes before the map
    return X, digits.target[:240]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_over_a_pipeline_with_opumap(n_jobs):
    X, y = _digits()
    pipe = Pipeline([("opu", OPUMap(n_components=200, device=IDEAL)), ("clf", RidgeClassifier())])
    grid = GridSearchCV(pipe, {"opu__n_components": [100, 200], "clf__alpha": [1.0, 1e3]}, cv=2, n_jobs=n_jobs,
                        error_score="raise")
    grid.fit(X, y)
    assert grid.best_estimator_.named_steps["opu"].n_components in (100, 200)
    # random features of binarised digits are far better than chance (0.1)
    assert grid.best_score_ > 0.6
    grid.best_estimator_.named_steps["opu"].close()


def test_a_pickled_fitted_pipeline_predicts_the_same_labels_in_a_new_process(tmp_path):
    X, y = _digits()
    pipe = Pipeline([("opu", OPUMap(n_components=200, device=IDEAL)), ("clf", RidgeClassifier())]).fit(X, y)
    labels = pipe.predict(X)
    path = tmp_path / "pipe.pkl"
    path.write_bytes(pickle.dumps(pipe))
    np.save(tmp_path / "X.npy", X)
    code = (
        "import pickle, sys, numpy as np\n"
        f"pipe = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        f"np.save({str(tmp_path / 'labels.npy')!r}, pipe.predict(np.load({str(tmp_path / 'X.npy')!r})))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), labels)
    pipe.named_steps["opu"].close()
