"""``msq calibrate`` keeps each measurement as it is made and a stopped run resumes from them
(real Yosys runs on the two small LUT-ROM cells)."""
import json
import shutil

import pytest

from msq.assets import CALIBRATION_JSON
from msq.design import calibrate


class Stop(Exception):
    pass


def _stop_after_first(line: str) -> None:
    raise Stop(line)


def test_a_stopped_calibration_resumes_from_its_saved_measurements(tmp_path):
    out = tmp_path / "calibration.json"
    shutil.copyfile(CALIBRATION_JSON, out)
    before = out.read_text()
    with pytest.raises(Stop):
        calibrate.calibrate(out, progress=_stop_after_first, kinds=["rom"])
    assert out.read_text() == before  # the table is written only when every cell is measured
    partial = calibrate.partial_path(out)
    saved = json.loads(partial.read_text())
    assert len(saved["measured"]) == 1
    (key, first), = saved["measured"].items()
    # a marked count shows the resumed run takes the saved measurement instead of synthesizing again
    saved["measured"][key] = {**first, "lut": 12345}
    partial.write_text(json.dumps(saved))
    lines: list[str] = []
    table = calibrate.calibrate(out, progress=lines.append, kinds=["rom"])
    roms = table["measured"]["rom"]
    assert [m["params"] for m in roms] == [[16, 64], [64, 64]]
    assert roms[0]["lut"] == 12345 and "saved in" in lines[0]
    assert roms[1]["lut"] > 0 and "saved in" not in lines[1]
    assert not partial.exists()
    assert json.loads(out.read_text())["measured"]["rom"] == roms
    assert table["measured"]["sp2_engine"] == json.loads(before)["measured"]["sp2_engine"]


def test_saved_measurements_of_another_yosys_are_not_used(tmp_path):
    out = tmp_path / "calibration.json"
    shutil.copyfile(CALIBRATION_JSON, out)
    kind, params, build = next(job for job in calibrate.jobs() if job[0] == "rom")
    calibrate.partial_path(out).write_text(json.dumps(
        {"yosys_version": "Yosys 0.1", "measured": {calibrate.build_key(kind, params, build): {"lut": 12345}}}))
    table = calibrate.calibrate(out, kinds=["rom"])
    assert all(m["lut"] != 12345 for m in table["measured"]["rom"])


def test_a_changed_cell_is_measured_again():
    kind, params, build = next(job for job in calibrate.jobs() if job[0] == "rom")
    changed = calibrate.Build(build.text + "\n// changed\n", build.kernels, build.wrapper_ff)
    assert calibrate.build_key(kind, params, build) != calibrate.build_key(kind, params, changed)
    assert calibrate.build_key(kind, params, build) == calibrate.build_key(kind, params, build)
