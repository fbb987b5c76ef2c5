"""Training options users expect: --lr/--batch-size/--device, NHWC datasets, per-layer bits in
metrics.json, a float baseline that is float, and DistributedDataParallel under torchrun."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
from click.testing import CliRunner
from torch import nn

from msq.cli import main
from msq.frontend.data import load_digits
from msq.frontend.models import QuantConfig, build_model
from msq.frontend.train import layer_bits, load_run

ROOT = Path(__file__).resolve().parent.parent


def _digits_npz(path: Path, nhwc: bool) -> Path:
    d = load_digits()
    fix = (lambda x: x.transpose(0, 2, 3, 1)) if nhwc else (lambda x: x)
    np.savez(path, x_train=fix(d.x_train), y_train=d.y_train, x_test=fix(d.x_test), y_test=d.y_test)
    return path


def test_nhwc_dataset_is_refused_naming_the_file_and_the_shape_expected(tmp_path):
    data = _digits_npz(tmp_path / "nhwc.npz", nhwc=True)
    res = CliRunner().invoke(main, ["train", "--model", "cnn", "--dataset", str(data), "--epochs", "1",
                                    "--out", str(tmp_path / "x")])
    assert res.exit_code == 2, res.output
    assert str(data) in res.output and "(1437, 8, 8, 1)" in res.output
    assert "expected (N, C, H, W) = (1437, 1, 8, 8)" in res.output and "--layout nhwc" in res.output
    nchw = _digits_npz(tmp_path / "nchw.npz", nhwc=False)
    res = CliRunner().invoke(main, ["train", "--dataset", str(nchw), "--layout", "nhwc", "--epochs", "1",
                                    "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "looks channels-first" in res.output, res.output


def test_nhwc_dataset_trains_with_layout_nhwc_and_options_are_recorded(tmp_path):
    data = _digits_npz(tmp_path / "nhwc.npz", nhwc=True)
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--model", "cnn", "--dataset", str(data), "--layout", "nhwc",
                                    "--epochs", "2", "--lr", "0.01", "--batch-size", "32", "--device", "cpu",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert {k: metrics["settings"][k] for k in ("lr", "batch_size", "device", "layout")} == \
        {"lr": 0.01, "batch_size": 32, "device": "cpu", "layout": "nhwc"}
    assert metrics["device"] == {"type": "cpu", "processes": 1}
    assert metrics["accuracy"]["test"] > 30.0
    net, ckpt = load_run(out)
    assert ckpt["data"]["in_shape"] == [1, 8, 8]


def test_bad_device_is_refused(tmp_path):
    res = CliRunner().invoke(main, ["train", "--device", "tpu", "--epochs", "1", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "device must be one of auto, cpu, cuda" in res.output, res.output


def _mixed_bits(in_shape, classes, cfg, signed_input):
    """A user model whose layers use their own bit widths (Brevitas defaults elsewhere), not the
    command line's."""
    return nn.Sequential(
        QuantIdentity(bit_width=6),
        nn.Flatten(), QuantLinear(64, 16, bias=True, weight_bit_width=3), QuantReLU(bit_width=5),
        QuantLinear(16, classes, bias=True))


def test_layer_bits_come_from_the_model_not_the_settings():
    net = build_model(_mixed_bits, (1, 8, 8), 10, QuantConfig(4, 4, "fixed"))
    assert layer_bits(net) == {"0": {"abits": 6}, "2": {"wbits": 3}, "3": {"abits": 5}, "4": {"wbits": 8}}


def test_float_baseline_of_a_user_model_is_float():
    net = build_model(_mixed_bits, (1, 8, 8), 10, QuantConfig(4, 4, "float"))
    assert all(v is None for bits in layer_bits(net).values() for v in bits.values())
    x = torch.rand(5, 1, 8, 8)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    plain.load_state_dict({k: v for k, v in zip(plain.state_dict(), (net[2].weight, net[2].bias, net[4].weight,
                                                                        net[4].bias))})
    assert torch.equal(net(x), plain(x))


def test_torchrun_two_cpu_processes_write_one_checkpoint(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "msq.cli", "-q", "train", "--epochs", "2", "--device", "cpu", "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["assignment.json", "metrics.json",
                                                                                  "model.pt"]
    assert not [p for p in tmp_path.iterdir() if p != out]  # nothing else written (no second run)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"] == {"type": "cpu", "processes": 2}
    net, ckpt = load_run(out)
    assert ckpt["train_config"]["model"] == "mlp"
    assert [type(m).__name__ for m in net] == ["QuantIdentity", "Flatten", "QuantLinear", "QuantReLU",
                                               "QuantLinear", "QuantReLU", "QuantLinear", "QuantIdentity"]
    assert metrics["accuracy"]["test"] > 20.0  # 2 epochs, chance is 10 %


def test_synthetic_dataset_has_its_shape_is_repeatable_and_learnable():
    """``synthetic:HxWxC:K``: (N, C, H, W) images in [0, 1], the same on every load, balanced
    classes, and a CNN trained on it for two epochs beats chance by far."""
    from msq.frontend.data import load_dataset
    from msq.frontend.train import TrainConfig, fit

    d = load_dataset("synthetic:12x10x3:4")
    assert d.in_shape == (3, 12, 10) and d.classes == 4 and len(d.x_train) + len(d.x_test) == 1000
    assert 0.0 <= d.x_train.min() and d.x_train.max() <= 1.0 and np.bincount(d.y_train).min() == 200
    again = load_dataset("synthetic:12x10x3:4")
    assert np.array_equal(d.x_train, again.x_train) and np.array_equal(d.y_test, again.y_test)
    assert load_dataset("synthetic:20:3").in_shape == (20,)
    _, _, _, metrics = fit(TrainConfig(model="cnn", dataset="synthetic:12x10x3:4", epochs=2, seed=0))
    assert metrics["accuracy"]["test"] > 60  # chance: 25 %


@pytest.mark.parametrize("spec, message", [
    ("synthetic:32x32:10", r"expected synthetic:HxWxC:K"),
    ("synthetic:8x8x1:1", r"classes must be in 2\.\.1000, got 1"),
    ("synthetic:256x256x3:10", r"1,000 inputs of 196,608 elements exceed 33,554,432 values"),
])
def test_synthetic_dataset_spec_errors_name_what_is_expected(spec, message):
    from msq.errors import MSQError
    from msq.frontend.data import load_dataset

    with pytest.raises(MSQError, match=rf"dataset '{spec}': {message}"):
        load_dataset(spec)
