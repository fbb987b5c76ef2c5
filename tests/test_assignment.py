"""Per-row scheme assignment and the board ratio."""
import math

import numpy as np
import pytest
import torch

from msq.boards import available_boards, load_board
from msq.design.cost_model import board_sp2_ratio
from msq.errors import MSQError
from msq.frontend.assignment import assign_schemes, choose_sp2_rows, sp2_suitability
from msq.frontend.models import QuantConfig, build_model
from msq.frontend.quantizer import msq_quantizers


@pytest.mark.parametrize("bell", ["normal", "laplace"])
def test_bell_shaped_rows_rank_more_sp2_suited_than_uniform(bell):
    rng = np.random.default_rng(0)
    bells = getattr(rng, bell)(size=(200, 128))
    flats = rng.uniform(-1, 1, size=(200, 128))
    score = sp2_suitability(np.concatenate([bells, flats]))
    mask = choose_sp2_rows(score, 0.5)
    assert mask[:200].mean() >= 0.97  # half the rows go SP2: nearly all of them bell-shaped
    assert np.median(score[:200]) > np.percentile(score[200:], 99)


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.33, 0.5, 0.87, 1.0])
def test_requested_fraction_is_met_exactly_per_layer(ratio):
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 10, QuantConfig(scheme="msq"))
    masks = assign_schemes(model, ratio)
    assert len(masks) == 3
    for name, mask in masks.items():
        assert mask.sum() == math.ceil(ratio * len(mask) - 1e-9), name
        assert np.array_equal(mask, msq_quantizers(model)[name].sp2_mask.numpy())


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan")])
def test_ratio_outside_unit_interval_is_rejected(ratio):
    with pytest.raises(MSQError, match=r"SP2 ratio must be a number in \[0, 1\]"):
        choose_sp2_rows(np.zeros(4), ratio)


def test_every_board_loads_and_gives_a_ratio_inside_0_1():
    assert {"pynq-z2", "zc706", "zcu104", "kv260", "ultra96"} <= set(available_boards())
    for name in available_boards():
        board = load_board(name)
        assert board.lut > 0 and board.dsp > 0 and board.part
        assert 0 < board_sp2_ratio(board, 4, 4) < 1
    # more DSPs per LUT → fewer SP2 rows
    assert board_sp2_ratio(load_board("zcu104"), 4, 4) < board_sp2_ratio(load_board("pynq-z2"), 4, 4)


def test_bad_board_files_name_the_field(tmp_path):
    bad = tmp_path / "b.yaml"
    bad.write_text("name: x\npart: p\nfamily: xc7\nlut: many\nff: 1\ndsp: 1\nbram36: 1\nclock_mhz: 100\n")
    with pytest.raises(MSQError, match="field 'lut' must be a non-negative integer"):
        load_board(bad)
    bad.write_text("name: x\npart: p\nfamily: xc7\nlut: 1\nff: 1\ndsp: 1\nbram36: 1\nclock_mhz: 100\n"
                   "board_part: 'pynq-z2; exec'\n")
    with pytest.raises(MSQError, match="field 'board_part' must be a Vivado board part"):
        load_board(bad)
    bad.write_text("name: x\npart: p\n")
    with pytest.raises(MSQError, match="missing field"):
        load_board(bad)
    with pytest.raises(MSQError, match="unknown board 'nope'"):
        load_board("nope")
