"""The exact cycle model of the generated RTL (docs/rtl.md explains it; the tests measure it).

Every layer owns :func:`buffer_counts` frame buffers of each of its inputs (a merge layer has two).
A writer (the input stream, or a layer) claims the next free buffer of every reader of its stream
when it starts a frame; a layer starts a frame when the oldest buffer of each input is full and it
can claim a buffer of each of its readers (a layer's claim reaches them one cycle later, through a
register, and it cannot go on to a frame in that cycle), then issues one step per cycle:
``pixels x folds x steps-per-fold`` for a dense/conv layer (:func:`layer_steps`), ``pixels x
groups x taps`` for pooling, ``pixels x groups`` for add and concat. Each fold's (group's) results
reach the readers' buffers a fixed number of cycles after its last step (:func:`write_delays`); a
buffer is full the cycle after its last beat, and is released by its reader's last step. The
input stream's claim and every beat it accepts reach its readers one cycle later, through a
register slice (:data:`INPUT_SLICE`), and it starts no frame while its claim is in flight. The
output buffers stream ``out_width`` elements per beat. :func:`timing` runs exactly these rules,
cycle by cycle, for a burst of inferences at full input rate and no output back-pressure: the
cycles of every input and output beat.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from msq.ir.model import INPUT, ComputeLayer, IRModel, Layer, MergeLayer
from msq.ir.plan import LayerPlan, Plan, engine_rows, folds


MIN_BUFFERS = 2  # frame buffers of a layer's input: one written while the other is read
INPUT_SLICE = 1  # cycles from an input beat's handshake to its write (msq_top's register slice)


def layer_steps(layer: Layer, lp: LayerPlan) -> int:
    """Cycles a layer issues steps for one frame (its MAC, pooling or merge cycles)."""
    from msq.backends.rtl import verilog

    if isinstance(layer, ComputeLayer):
        return verilog.pixels(layer) * folds(layer, lp) * verilog.steps_per_fold(layer, lp)
    if isinstance(layer, MergeLayer):
        return verilog.pixels(layer) * (layer.out_shape[-1] // lp.simd)
    return verilog.pixels(layer) * (layer.in_shape[-1] // lp.simd) * layer.kernel[0] * layer.kernel[1]


def write_delays(layer: Layer, lp: LayerPlan) -> tuple[int, list[int]]:
    """(steps per output beat, cycles from a beat's last step to its write, per output port)."""
    from msq.backends.rtl import verilog

    if isinstance(layer, ComputeLayer):
        return (verilog.steps_per_fold(layer, lp),
                [verilog.engine_latency(layer, e, lp) for e in engine_rows(layer, lp)])
    if isinstance(layer, MergeLayer):
        return 1, [verilog.REQUANT_LANE_LATENCY]
    return layer.kernel[0] * layer.kernel[1], [verilog.pool_latency(layer)]


def all_layer_cycles(ir: IRModel, plan: Plan) -> dict[str, int]:
    """:func:`layer_steps` of every layer, by name."""
    return {layer.name: layer_steps(layer, plan[layer.name]) for layer in ir.layers}


def stage_cycles(ir: IRModel, plan: Plan) -> list[int]:
    """Busy cycles per frame of every stage: input stream, layers, output stream."""
    return ([int(np.prod(ir.input_shape)) // plan.in_width] + list(all_layer_cycles(ir, plan).values())
            + [int(np.prod(ir.output_shape)) // plan.out_width])


def _edges(ir: IRModel) -> list[list[int]]:
    """Per stage (input stream 0, layer i at i + 1, output stream last), the stages it reads."""
    index = {INPUT: 0, **{layer.name: i + 1 for i, layer in enumerate(ir.layers)}}
    return [[]] + [[index[name] for name in ir.inputs_of(i)] for i in range(len(ir.layers))] + [[len(ir.layers)]]


def buffer_counts(ir: IRModel, plan: Plan) -> list[tuple[int, ...]]:
    """Frames each stage's buffers hold, per input (every layer's inputs in slot order, then the
    output stream's): enough that a writer may run ahead of its reader by everything between them,
    so that neither waits in steady state. A buffer is claimed when its writer starts a frame and
    released when its reader ends it; between the two lie, on the longest path from writer to
    reader, each stage's steps ``S``, its results' delay ``D`` and 3 cycles of hand-over, then the
    reader's ``S``; ``n`` buffers cover that if ``n`` times the slowest stage on the way does (at
    least 2). For a chain this is ``S_w + D + S_r + 3`` over ``max(S_w, S_r)``; a residual shortcut
    holds frames for as long as the branch it skips takes."""
    stages = stage_cycles(ir, plan)
    delays = [INPUT_SLICE] + [max(write_delays(layer, plan[layer.name])[1]) for layer in ir.layers] + [0]
    reads = _edges(ir)
    counts = []
    for reader in range(1, len(stages)):
        per_input = []
        for writer in reads[reader]:
            # longest hand-over path writer -> reader, and the slowest stage on any path between
            reach = {writer: (stages[writer] + delays[writer] + 3, stages[writer])}
            for k in range(writer + 1, reader):
                came = [reach[j] for j in reads[k] if j in reach]
                if came:
                    reach[k] = (max(c[0] for c in came) + stages[k] + delays[k] + 3,
                                max(max(c[1] for c in came), stages[k]))
            came = [reach[j] for j in reads[reader] if j in reach]  # the direct edge, and longer paths
            path, slowest = max(c[0] for c in came), max(stages[reader], *(c[1] for c in came))
            per_input.append(max(MIN_BUFFERS, -(-(path + stages[reader]) // slowest)))
        counts.append(tuple(per_input))
    return counts


def timing_inferences(ir: IRModel, plan: Plan) -> int:
    """Inferences in a timing burst: enough for the dataflow to settle into its steady pattern."""
    return 2 * max(max(c) for c in buffer_counts(ir, plan)) + 2


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
        if not (claim or writes or release):
            return  # nothing changes (a done row is cleared in the cycle it fills)
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
    reads = _edges(ir)
    ports = [[n_in_beats]] + [[p.beats for p in verilog.output_ports(layer, plan[layer.name])] for layer in layers]
    # inputs[s]: the buffers stage s reads (layer i is stage i + 1; the output stream last), one per slot;
    # readers[s]: the buffers stage s writes (every reader's of its stream)
    inputs = [[]] + [[_Buffer(n, ports[w]) for n, w in zip(counts[s - 1], reads[s])] for s in range(1, len(reads))]
    readers: list[list[_Buffer]] = [[] for _ in reads]
    for s in range(1, len(reads)):
        for buf, w in zip(inputs[s], reads[s]):
            readers[w].append(buf)
    out_buffer = inputs[-1][0]
    steps = [layer_steps(layer, plan[layer.name]) for layer in layers]
    delays = [write_delays(layer, plan[layer.name]) for layer in layers]
    run = [False] * len(layers)
    claim_q = [False] * len(layers)  # each layer's registered claim of its readers' buffers
    step = [0] * len(layers)
    pending: list[dict[int, list[int]]] = [{} for _ in layers]  # cycle -> ports writing, per layer
    filling, in_beat, sent = False, 0, 0
    in_claim_q, in_wr_q = False, False  # the input stream's register slice
    out_beat = 0
    timing_in, timing_out = [], []
    limit = (inferences + 2) * (sum(steps) + sum(max(d) for _, d in delays) + n_in_beats + n_out_beats + 16) + 100
    for t in range(limit):
        if len(timing_out) == inferences * n_out_beats:
            break
        # --- combinational, from the registers of cycle t ---
        in_ready = filling or (all(b.can_claim() for b in readers[0]) and not in_claim_q)
        in_fire = sent < inferences * n_in_beats and in_ready
        claims = [in_claim_q] + claim_q   # per writing stage
        writes: list[list[int]] = [[0] if in_wr_q else []] + [[] for _ in layers]
        releases = [False] * len(reads)                # per reading stage
        starts, go_ons, frame_ends = [False] * len(layers), [False] * len(layers), [False] * len(layers)
        for i in range(len(layers)):
            srcs, dsts = inputs[i + 1], readers[i + 1]
            frame_ends[i] = run[i] and step[i] == steps[i] - 1
            free = all(b.can_claim() for b in dsts)
            starts[i] = not run[i] and all(b.rd_full() for b in srcs) and free
            go_ons[i] = frame_ends[i] and all(b.rd_next_full() for b in srcs) and free and not claim_q[i]
            releases[i + 1] = frame_ends[i]
            writes[i + 1] = pending[i].pop(t, [])
            if run[i]:
                per_beat, port_delays = delays[i]
                if (step[i] + 1) % per_beat == 0:
                    for p, d in enumerate(port_delays):
                        pending[i].setdefault(t + d, []).append(p)
        out_fire = out_buffer.rd_full()
        releases[-1] = out_fire and out_beat == n_out_beats - 1
        if in_fire:
            timing_in.append(t)
        if out_fire:
            timing_out.append(t)
        # --- the rising edge ---
        in_claim_q, in_wr_q = in_fire and not filling, in_fire
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
        for s in range(1, len(reads)):
            for buf, w in zip(inputs[s], reads[s]):
                buf.clock(claims[w], sorted(writes[w]), releases[s])
        claim_q = [s or g for s, g in zip(starts, go_ons)]
    return Timing(timing_in, timing_out, n_out_beats)


def inference_interval(ir: IRModel, plan: Plan) -> float:
    """Steady-state cycles per inference of the design (see :func:`steady_interval`)."""
    return timing(ir, plan, timing_inferences(ir, plan)).interval


def latency(ir: IRModel, plan: Plan) -> int:
    """Cycles from the first input beat to the last output beat through an idle pipeline."""
    return timing(ir, plan, 1).latency
