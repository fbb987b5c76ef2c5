"""Training runs, run directories, determinism and the CLI's errors for bad input."""
import json
import re

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from msq.cli import main
from msq.errors import MSQError
from msq.frontend.trace import check_supported
from msq.frontend.train import TrainConfig, load_run, train_run

SHORT = dict(epochs=5, seed=3)


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "mlp"
    metrics = train_run(TrainConfig(model="mlp", **SHORT), out)
    return out, metrics


def test_short_run_beats_chance_by_a_wide_margin(mlp_run):
    _, metrics = mlp_run
    assert metrics["accuracy"]["test"] > 80.0  # chance is 10 %


def test_run_directory_holds_checkpoint_assignment_and_metrics(mlp_run):
    out, metrics = mlp_run
    ckpt = torch.load(out / "model.pt", weights_only=True)
    assert ckpt["train_config"]["model"] == "mlp"
    assignment = json.loads((out / "assignment.json").read_text())
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["accuracy"] == metrics["accuracy"]
    per_layer = on_disk["sp2_fraction"]["per_layer"]
    assert set(assignment) == set(per_layer)
    for name, rows in assignment.items():
        assert set(rows) <= {"S", "F"} and rows.count("S") == per_layer[name]["sp2_rows"]
    assert 0 < on_disk["sp2_fraction"]["overall"] < 1
    model, _ = load_run(out)
    check_supported(model)


def test_same_seed_same_result(mlp_run, tmp_path):
    out, metrics = mlp_run
    again = train_run(TrainConfig(model="mlp", **SHORT), tmp_path / "again")
    assert again["history"] == metrics["history"]
    a = torch.load(out / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "again" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cnn_cli_trains_with_fixed_ratio(tmp_path):
    res = CliRunner().invoke(main, ["train", "--model", "cnn", "--scheme", "msq", "--sp2-ratio", "0.5",
                                    "--epochs", "3", "--out", str(tmp_path / "cnn")])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "cnn" / "metrics.json").read_text())
    for layer in metrics["sp2_fraction"]["per_layer"].values():
        assert layer["sp2_rows"] == -(-layer["rows"] // 2)
    assert metrics["accuracy"]["test"] > 30.0


@pytest.mark.parametrize("args, message", [
    (["--board", "nosuchboard"], "unknown board 'nosuchboard'"),
    (["--wbits", "9"], "wbits=9 is out of range"),
    (["--abits", "1"], "abits=1 is out of range"),
    (["--sp2-ratio", "1.2"], r"SP2 ratio must be a number in \[0, 1\]"),
    (["--dataset", "mnist"], "unknown dataset 'mnist'"),
])
def test_cli_bad_input_gives_a_clear_error(tmp_path, args, message):
    res = CliRunner().invoke(main, ["train", "--epochs", "1", "--out", str(tmp_path / "x"), *args])
    assert res.exit_code == 2
    assert re.search(message, res.output), res.output
    assert not (tmp_path / "x" / "model.pt").exists()


def test_cli_rejects_unknown_scheme(tmp_path):
    res = CliRunner().invoke(main, ["train", "--scheme", "ternary", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "'ternary' is not one of" in res.output


def test_unsupported_layer_is_named():
    model = nn.Sequential(nn.Flatten(), nn.LSTM(4, 4))
    with pytest.raises(MSQError, match=r"layer '1' \(LSTM\) is not supported"):
        check_supported(model)
