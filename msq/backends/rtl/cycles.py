"""The exact cycle model of the generated RTL (docs/rtl.md explains it; the tests measure it).

Every layer owns :func:`buffer_counts` frame buffers of its input. A writer (the input stream, or
the layer before) claims the next free buffer when it starts a frame; a layer starts a frame when
its oldest buffer is full and it can claim one of the next stage's (a layer's claim reaches the next
buffers one cycle later, through a register, and it cannot go on to a frame in that cycle), then
issues one step per cycle:
``pixels x folds x steps-per-fold`` for a dense/conv layer (:func:`layer_steps`), ``pixels x
groups x taps`` for pooling. Each fold's (group's) results reach the next buffer a fixed number of
cycles after its last step (:func:`write_delays`); a buffer is full the cycle after its last beat,
and is released by its reader's last step. The output buffers stream ``out_width`` elements per
beat. :func:`timing` runs exactly these rules, cycle by cycle, for a burst of inferences at full
input rate and no output back-pressure: the cycles of every input and output beat.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from msq.ir.model import ComputeLayer, IRModel, Layer
from msq.ir.plan import LayerPlan, Plan, engine_rows, folds


def layer_steps(layer: Layer, lp: LayerPlan) -> int:
    """Cycles a layer issues steps for one frame (its MAC or pooling cycles)."""
    from msq.backends.rtl import verilog

    if isinstance(layer, ComputeLayer):
        return verilog.pixels(layer) * folds(layer, lp) * verilog.steps_per_fold(layer, lp)
    return verilog.pixels(layer) * (layer.in_shape[-1] // lp.simd) * layer.kernel[0] * layer.kernel[1]


def write_delays(layer: Layer, lp: LayerPlan) -> tuple[int, list[int]]:
    """(steps per output beat, cycles from a beat's last step to its write, per output port)."""
    from msq.backends.rtl import verilog

    if isinstance(layer, ComputeLayer):
        return (verilog.steps_per_fold(layer, lp),
                [verilog.engine_latency(layer, e.kind, lp) for e in engine_rows(layer, lp)])
    return layer.kernel[0] * layer.kernel[1], [verilog.pool_latency(layer)]


def all_layer_cycles(ir: IRModel, plan: Plan) -> dict[str, int]:
    """:func:`layer_steps` of every layer, by name."""
    return {layer.name: layer_steps(layer, plan[layer.name]) for layer in ir.layers}


def stage_cycles(ir: IRModel, plan: Plan) -> list[int]:
    """Busy cycles per frame of every stage: input stream, layers, output stream."""
    return ([int(np.prod(ir.input_shape)) // plan.in_width] + list(all_layer_cycles(ir, plan).values())
            + [int(np.prod(ir.output_shape)) // plan.out_width])


def buffer_counts(ir: IRModel, plan: Plan) -> list[int]:
    """Frames each stage's buffers hold (every layer's input, then the output stream's): enough that
    a writer may run ahead of its reader by the writer's pipeline depth, so that neither waits in
    steady state. ``n`` buffers let a writer start frame ``i + n`` once the reader released frame
    ``i``; with writer and reader busy ``S_w`` and ``S_r`` cycles per frame and the writer's results
    landing ``D`` cycles after its last step, ``n`` frames take at least ``S_w + D + S_r + 3`` cycles,
    which ``n * max(S_w, S_r)`` must cover."""
    stages = stage_cycles(ir, plan)
    delays = [0] + [max(write_delays(layer, plan[layer.name])[1]) for layer in ir.layers]
    return [max(2, -(-(stages[k] + stages[k + 1] + delays[k] + 3) // max(stages[k], stages[k + 1])))
            for k in range(len(stages) - 1)]


def timing_inferences(ir: IRModel, plan: Plan) -> int:
    """Inferences in a timing burst: enough for the dataflow to settle into its steady pattern."""
    return 2 * max(buffer_counts(ir, plan)) + 2


@dataclass
class _Buffer:
    """The control state of one stage's frame buffers (msq_fbuf_*)."""

    n: int
    ports: list[int]              # beats per frame of each writer port
    busy: list[bool] = field(default_factory=list)
    full: list[bool] = field(default_factory=list)
    done: list[list[bool]] = field(default_factory=list)
    ch: int = 0
    rh: int = 0
    beat: list[int] = field(default_factory=list)
    ph: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.busy, self.full = [False] * self.n, [False] * self.n
        self.done = [[False] * len(self.ports) for _ in range(self.n)]
        self.beat, self.ph = [0] * len(self.ports), [0] * len(self.ports)

    def can_claim(self) -> bool:
        return not self.busy[self.ch]

    def rd_full(self) -> bool:
        return self.full[self.rh]

    def rd_next_full(self) -> bool:
        return self.full[(self.rh + 1) % self.n]

    def clock(self, claim: bool, writes: list[int], release: bool) -> None:
        """One rising edge: the port writes, full flags, release and claim (as msq_fbuf_*)."""
        done_now = [row[:] for row in self.done]
        for p in writes:
            if self.beat[p] == self.ports[p] - 1:
                done_now[self.ph[p]][p] = True
                self.beat[p], self.ph[p] = 0, (self.ph[p] + 1) % self.n
            else:
                self.beat[p] += 1
        self.done = done_now
        for b in range(self.n):
            if all(done_now[b]):
                self.full[b] = True
                self.done[b] = [False] * len(self.ports)
        if release:
            self.busy[self.rh] = self.full[self.rh] = False
            self.rh = (self.rh + 1) % self.n
        if claim:
            self.busy[self.ch] = True
            self.ch = (self.ch + 1) % self.n


@dataclass
class Timing:
    """Cycles (relative to the first input beat) of every beat of a burst of inferences."""

    in_beats: list[int]
    out_beats: list[int]
    out_beats_per_inference: int

    @property
    def ends(self) -> list[int]:
        """The cycle of each inference's last output beat."""
        k = self.out_beats_per_inference
        return [self.out_beats[(j + 1) * k - 1] for j in range(len(self.out_beats) // k)]

    @property
    def latency(self) -> int:
        """First input beat to the first inference's last output beat, both counted."""
        return self.ends[0] - self.in_beats[0] + 1

    @property
    def intervals(self) -> list[int]:
        e = self.ends
        return [b - a for a, b in zip(e, e[1:])]

    @property
    def interval(self) -> float:
        """Steady-state cycles per inference: :func:`steady_interval` of the burst."""
        return steady_interval(self.intervals)


def steady_interval(intervals: list[int]) -> float:
    """Cycles per inference in steady state: the mean over the second half of a burst's intervals
    (a pipeline that its buffers do not fully decouple repeats a pattern shorter than that)."""
    tail = intervals[len(intervals) // 2:]
    return round(sum(tail) / len(tail), 3)


def timing(ir: IRModel, plan: Plan, inferences: int) -> Timing:
    """Run the control of the generated design for ``inferences`` frames at full input rate."""
    from msq.backends.rtl import verilog

    layers = ir.layers
    n_in_beats = int(np.prod(ir.input_shape)) // plan.in_width
    n_out_beats = int(np.prod(ir.output_shape)) // plan.out_width
    counts = buffer_counts(ir, plan)
    buffers = [_Buffer(counts[0], [n_in_beats])]
    for k, layer in enumerate(layers):
        buffers.append(_Buffer(counts[k + 1], [p.beats for p in verilog.output_ports(layer, plan[layer.name])]))
    steps = [layer_steps(layer, plan[layer.name]) for layer in layers]
    delays = [write_delays(layer, plan[layer.name]) for layer in layers]
    run = [False] * len(layers)
    claim_q = [False] * len(layers)  # each layer's registered claim of the next stage's buffer
    step = [0] * len(layers)
    pending: list[dict[int, list[int]]] = [{} for _ in layers]  # cycle -> ports writing, per layer
    filling, in_beat, sent = False, 0, 0
    out_beat = 0
    timing_in, timing_out = [], []
    limit = (inferences + 2) * (sum(steps) + sum(max(d) for _, d in delays) + n_in_beats + n_out_beats + 16) + 100
    for t in range(limit):
        if len(timing_out) == inferences * n_out_beats:
            break
        # --- combinational, from the registers of cycle t ---
        in_ready = filling or buffers[0].can_claim()
        in_fire = sent < inferences * n_in_beats and in_ready
        claims = [in_fire and not filling] + claim_q
        writes: list[list[int]] = [[0] if in_fire else []] + [[] for _ in layers]
        releases = [False] * (len(layers) + 1)
        starts, go_ons, frame_ends = [False] * len(layers), [False] * len(layers), [False] * len(layers)
        for i in range(len(layers)):
            src, dst = buffers[i], buffers[i + 1]
            frame_ends[i] = run[i] and step[i] == steps[i] - 1
            starts[i] = not run[i] and src.rd_full() and dst.can_claim()
            go_ons[i] = frame_ends[i] and src.rd_next_full() and dst.can_claim() and not claim_q[i]
            releases[i] = frame_ends[i]
            writes[i + 1] = pending[i].pop(t, [])
            if run[i]:
                per_beat, port_delays = delays[i]
                if (step[i] + 1) % per_beat == 0:
                    for p, d in enumerate(port_delays):
                        pending[i].setdefault(t + d, []).append(p)
        out_fire = buffers[-1].rd_full()
        releases[-1] = out_fire and out_beat == n_out_beats - 1
        if in_fire:
            timing_in.append(t)
        if out_fire:
            timing_out.append(t)
        # --- the rising edge ---
        if in_fire:
            filling = in_beat != n_in_beats - 1
            in_beat = 0 if in_beat == n_in_beats - 1 else in_beat + 1
            sent += 1
        if out_fire:
            out_beat = 0 if releases[-1] else out_beat + 1
        for i in range(len(layers)):
            if starts[i]:
                run[i] = True
            elif run[i]:
                if frame_ends[i]:
                    run[i], step[i] = go_ons[i], 0
                else:
                    step[i] += 1
        for k, buf in enumerate(buffers):
            buf.clock(claims[k], sorted(writes[k]), releases[k])
        claim_q = [s or g for s, g in zip(starts, go_ons)]
    return Timing(timing_in, timing_out, n_out_beats)


def inference_interval(ir: IRModel, plan: Plan) -> float:
    """Steady-state cycles per inference of the design (see :func:`steady_interval`)."""
    return timing(ir, plan, timing_inferences(ir, plan)).interval


def latency(ir: IRModel, plan: Plan) -> int:
    """Cycles from the first input beat to the last output beat through an idle pipeline."""
    return timing(ir, plan, 1).latency
