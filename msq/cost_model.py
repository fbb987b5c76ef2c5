"""First resource cost model: what one MAC of each scheme costs, and the board's SP2 ratio.

DESIGN.md §4: with ``P_lut`` SP2 MACs/cycle that the LUT budget affords and ``P_dsp`` fixed MACs/
cycle that the DSP budget affords, ``r = P_lut / (P_lut + P_dsp)`` makes both engines finish
together. This first model is analytic; the synthesis issue calibrates it with Yosys runs of
the project's own kernels and replaces the per-MAC figures below.

SP2 MAC (m-bit weight, a-bit activation, E = 2^m1 - 1): two barrel shifters moving the
activation by 0..E places (``ceil(log2(E+1))`` mux stages of ``a+E`` bits, two 2:1 muxes per
LUT6), one ``a+E+1``-bit adder and an accumulator of ``a+E+1+GROWTH`` bits, one LUT per bit.
Fixed MAC: one DSP48 (its multiplier and accumulator), for operands up to 18×25 bits.
Only ``HEADROOM`` of each resource is planned for: the rest holds control, stream glue and
requantization.
"""
from __future__ import annotations

import math

from msq.boards import Board
from msq.numerics import check_bits, sp2_exponent

HEADROOM = 0.8
ACC_GROWTH_BITS = 8  # accumulator bits above the product width (fan-in up to 256 per pass)


def sp2_mac_luts(wbits: int, abits: int) -> float:
    """Estimated LUTs for one SP2 shift-add MAC (see the module docstring)."""
    check_bits(wbits)
    check_bits(abits, "abits")
    e = sp2_exponent(wbits)
    width = abits + e
    shifters = 2 * width * math.ceil(math.log2(e + 1)) / 2
    return shifters + (width + 1) + (width + 1 + ACC_GROWTH_BITS)


def fixed_mac_dsps(wbits: int, abits: int) -> float:
    """DSP slices for one fixed-point MAC: one DSP48 holds an 18×25 product and its sum."""
    check_bits(wbits)
    check_bits(abits, "abits")
    return 1.0


def board_sp2_ratio(board: Board, wbits: int, abits: int) -> float:
    """The SP2 row fraction that balances the board's LUT engine against its DSP engine."""
    p_lut = HEADROOM * board.lut / sp2_mac_luts(wbits, abits)
    p_dsp = HEADROOM * board.dsp / fixed_mac_dsps(wbits, abits)
    return p_lut / (p_lut + p_dsp)
