"""The Python API (msq/api.py) and the command line's progress output: the quickstart runs end to
end, the API's objects agree with the reference, ``import msq`` stays light, bars appear on stderr
and ``--quiet`` silences everything but errors."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import msq
from msq import ref
from msq.cli import main
from msq.errors import MSQError
from msq.frontend.data import load_dataset

ROOT = Path(__file__).resolve().parent.parent


def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_quickstart_runs_end_to_end(tmp_path):
    proc = _python(str(ROOT / "examples" / "quickstart.py"), "--epochs", "3", "--vectors", "4", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert re.search(r"HLS C-sim: 0 mismatches on \d+ inputs; predictions equal the reference's: True", out), out
    assert re.search(r"Verilog: 0 mismatches on \d+ inputs, \d+ cycles per inference", out), out
    lut = re.search(r"yosys for pynq-z2: LUT (\d+), FF (\d+), DSP (\d+)", out)
    assert lut and int(lut.group(1)) > 0 and int(lut.group(2)) > 0, out
    fake, deployed = map(float, re.search(r"fake-quant accuracy ([\d.]+)%, deployed \(integer reference\) ([\d.]+)%",
                                          out).groups())
    assert deployed > 30 and abs(fake - deployed) <= 2.0
    assert not list(tmp_path.iterdir())  # temporary projects are cleaned up


def test_import_msq_is_light_and_loads_the_api_on_use(tmp_path):
    code = "import sys, msq; assert 'torch' not in sys.modules; assert callable(msq.hls); print('torch' in sys.modules)"
    proc = _python("-c", code, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr
    assert set(msq.__all__) >= {"train", "export", "predict", "hls", "rtl", "synth", "plan"}
    with pytest.raises(AttributeError):
        msq.no_such_function  # noqa: B018


def test_api_objects_agree_with_the_reference(mlp_demo, tmp_path):
    run, ir_model = mlp_demo
    ir = msq.export(run)  # a run directory of msq train
    x = load_dataset("digits").x_test[:50]
    x_int = ir_model.quantize_input(x)
    assert np.array_equal(ir.predict(x), ref.predict(ir_model, x_int))
    assert np.array_equal(msq.predict(ir, x), ir.predict(x))
    assert np.array_equal(ir.logits(x), ref.infer(ir_model, x_int).reshape(len(x), -1))
    again = msq.IR.load(ir.save(tmp_path / "ir"))
    assert np.array_equal(again.logits(x), ir.logits(x)) and "dense1" in again.summary()
    planned = msq.plan(ir, "pynq-z2")
    assert planned.interval > 0 and planned.resources.lut > 0
    design = msq.rtl(ir, planned)
    assert design.plan == planned.plan and design.path is None
    hls = msq.hls(ir, "zcu104", planned)
    project = hls.write(tmp_path / "hls", x[:3])
    assert (project / "hls_config.cfg").is_file() and "part=xczu7ev" in (project / "hls_config.cfg").read_text()


def test_api_train_with_a_function_cannot_write_a_run_directory(tmp_path):
    with pytest.raises(MSQError, match="rebuild"):
        msq.train(lambda *a: None, epochs=1, out=tmp_path / "run")


def test_cli_shows_a_progress_bar_on_stderr_and_quiet_prints_nothing(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["train", "--epochs", "1", "--out", str(tmp_path / "loud")])
    assert res.exit_code == 0, res.output
    assert "test accuracy" in res.stdout and "train mlp/msq" not in res.stdout
    assert re.search(r"train mlp/msq: 100%\|.*\| 1/1 \[.*epoch", res.stderr), res.stderr
    res = runner.invoke(main, ["--quiet", "train", "--epochs", "1", "--out", str(tmp_path / "quiet")])
    assert res.exit_code == 0 and (tmp_path / "quiet" / "metrics.json").is_file()
    assert res.stdout == "" and res.stderr == ""
    res = runner.invoke(main, ["-q", "export", str(tmp_path / "missing")])  # errors still speak
    assert res.exit_code == 2 and res.stdout == "" and res.stderr.startswith("error: ")
