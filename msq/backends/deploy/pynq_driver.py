"""PYNQ driver of an MSQ core behind an AXI DMA (Zynq PS7 + axi_dma_0 + msq_core_0).

``msq deploy`` copies this file as ``msq_driver.py`` next to ``msq.bit`` and ``msq.hwh`` with
FORMAT filled in. Packing is pure numpy (no ``pynq`` needed, so the host and the tests use the very
same functions); ``MSQOverlay`` imports ``pynq`` only when made, on the board::

    from msq_driver import MSQOverlay
    y = MSQOverlay().predict(x)   # x: integers (N, *input_shape) in the input format

Memory layout (what the DMA moves): one beat is TDATA_BITS / 8 bytes, little-endian (byte 0 =
TDATA[7:0]); a beat holds WIDTH elements, element j in bits [j*BITS, (j+1)*BITS), two's
complement when signed, zero-padded; a frame (one inference) is BEATS beats of the channels-last
tensor. The core ends every output frame with TLAST, which ends an S2MM transfer: ``predict``
sends all inputs in one MM2S transfer and receives one frame per S2MM transfer. The input's
TLAST is ignored by the core (it counts beats).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

# The stream format of the design (written by msq deploy from the IR and the plan).
FORMAT: dict = {}

BITFILE = Path(__file__).with_name("msq.bit")  # msq.hwh beside it describes the block design
DMA = "axi_dma_0"  # the AXI DMA's instance name in the block design
MAX_TRANSFER_BYTES = (1 << 26) - 1  # the DMA's buffer length register (c_sg_length_width 26)


def _beat_bytes(side: str) -> int:
    return FORMAT[f"{side}_tdata_bits"] // 8


def pack_inputs(x: np.ndarray) -> np.ndarray:
    """Integers (N, *input_shape) -> the bytes the DMA sends, uint8 (N, beats, bytes per beat)."""
    f = FORMAT
    x = np.asarray(x)
    if x.shape[1:] != tuple(f["input_shape"]) and x.shape != tuple(f["input_shape"]):
        raise ValueError(f"expected inputs of shape (N, {', '.join(map(str, f['input_shape']))}), got {x.shape}")
    x = x.reshape((-1,) + tuple(f["input_shape"])).astype(np.int64)
    bits, width = f["in_bits"], f["in_width"]
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if f["in_signed"] else (0, (1 << bits) - 1)
    if x.size and (x.min() < lo or x.max() > hi):
        raise ValueError(f"inputs must be integers in [{lo}, {hi}] ({bits}-bit "
                         f"{'signed' if f['in_signed'] else 'unsigned'}), got [{x.min()}, {x.max()}]")
    codes = (x.reshape(len(x), f["in_beats"], width) & ((1 << bits) - 1)).astype(np.uint64)
    field_bits = (codes[..., None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)  # LSB first
    beat_bits = np.zeros((len(x), f["in_beats"], f["in_tdata_bits"]), dtype=np.uint8)
    beat_bits[..., :width * bits] = field_bits.reshape(len(x), f["in_beats"], width * bits)
    return np.packbits(beat_bits, axis=-1, bitorder="little")


def unpack_outputs(words: np.ndarray) -> np.ndarray:
    """The bytes the DMA received (N frames, any shape of N * beats * bytes) -> integers (N, *output_shape)."""
    f = FORMAT
    frame_bytes = f["out_beats"] * _beat_bytes("out")
    words = np.asarray(words, dtype=np.uint8).reshape(-1)
    if words.size % frame_bytes:
        raise ValueError(f"{words.size} bytes are not whole output frames of {frame_bytes} bytes")
    n, bits, width = words.size // frame_bytes, f["out_bits"], f["out_width"]
    beat_bits = np.unpackbits(words.reshape(n, f["out_beats"], _beat_bytes("out")), axis=-1, bitorder="little")
    fields = beat_bits[..., :width * bits].reshape(n, f["out_beats"], width, bits).astype(np.int64)
    values = (fields << np.arange(bits, dtype=np.int64)).sum(axis=-1)
    if f["out_signed"]:
        values = np.where(values >> (bits - 1), values - (1 << bits), values)
    return values.reshape((n,) + tuple(f["output_shape"]))


class MSQOverlay:
    """The bitstream loaded through PYNQ, its DMA driving the core (``pynq`` imported here only)."""

    def __init__(self, bitfile: str | Path = BITFILE, download: bool = True):
        from pynq import Overlay

        self.overlay = Overlay(str(bitfile), download=download)
        self.dma = getattr(self.overlay, DMA)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Integers (N, *input_shape) through the core -> its integer outputs (N, *output_shape)."""
        from pynq import allocate

        words = pack_inputs(x)
        frame_in = words[0].nbytes if len(words) else 1
        per_send = max(1, MAX_TRANSFER_BYTES // frame_in)
        out = np.empty((len(words), FORMAT["out_beats"], _beat_bytes("out")), dtype=np.uint8)
        frame = allocate(shape=out.shape[1:], dtype=np.uint8)
        try:
            for start in range(0, len(words), per_send):
                chunk = words[start:start + per_send]
                src = allocate(shape=chunk.shape, dtype=np.uint8)
                try:
                    src[:] = chunk
                    self.dma.sendchannel.transfer(src)
                    for i in range(start, start + len(chunk)):  # TLAST ends each S2MM transfer: a frame each
                        self.dma.recvchannel.transfer(frame)
                        self.dma.recvchannel.wait()
                        out[i] = frame
                    self.dma.sendchannel.wait()
                finally:
                    src.freebuffer()
        finally:
            frame.freebuffer()
        return unpack_outputs(out)
