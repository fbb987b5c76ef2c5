"""The ``msq`` command line: one sub-command per pipeline stage."""
from __future__ import annotations

import contextlib
import os
import sys
from functools import wraps

import click

from msq.design.cost_model import HEADROOM
from msq.errors import MSQError
from msq.frontend.quantizer import TRAINING_SCHEMES
from msq.progress import Step


def _clear_errors(fn):
    """One line on stderr instead of a traceback (``msq --debug`` shows it): exit 2 for bad input
    (MSQError) or a file the system refused (OSError), 3 for anything else, which is a bug."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit):
            raise
        except Exception as exc:
            ctx = click.get_current_context(silent=True)
            if ctx is not None and ctx.find_root().params.get("debug"):
                raise
            click.echo(f"error: {_message(exc)}", err=True)
            sys.exit(2 if isinstance(exc, (MSQError, OSError)) else 3)

    return wrapper


def _message(exc: Exception) -> str:
    if isinstance(exc, MSQError):
        return str(exc)
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, OSError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "out of memory (set MSQ_MAX_MEMORY_MB lower to be refused earlier)"
    return (f"unexpected {type(exc).__name__}: {str(exc)[:300]}; this is a bug in MSQ, please report it "
            "(see docs/security.md; 'msq --debug ...' shows the traceback)")


class _Reports:
    """Where the library's progress reports go: text lines to stdout, steps as tqdm bars with an
    ETA (where the total is known) on stderr, one bar per task; nothing at all with --quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bars: dict[str, object] = {}

    def __call__(self, report: str | Step) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if isinstance(report, str):
            tqdm.write(report, file=sys.stdout)  # above any open bar
            return
        bar = self.bars.get(report.task)
        if bar is None:
            bar = self.bars[report.task] = tqdm(desc=report.task, total=report.total, unit=report.unit,
                                                file=sys.stderr, dynamic_ncols=True)
        if report.total != bar.total:
            bar.total = report.total
        if report.note:
            bar.set_postfix_str(report.note, refresh=False)
        bar.update(report.done - bar.n)
        if report.finished:
            bar.close()
            del self.bars[report.task]

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def _progress() -> _Reports:
    """The current command's progress receiver (set up by the ``msq`` group from --quiet)."""
    return click.get_current_context().find_object(_Reports)


def _stack(*decorators):
    """One decorator made of several click options, for options that several commands share."""
    def apply(fn):
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn
    return apply


def _to_board(ctx, param, value):
    from msq.boards import load_board

    try:
        return load_board(value)
    except (MSQError, OSError) as exc:
        raise click.BadParameter(_message(exc), ctx, param) from exc


def _to_rundir(ctx, param, value):
    from msq.rundir import RunDir

    return RunDir(value)


def board_option(help_text: str = "Board name from boards/ or a path to a board .yaml."):
    """``--board``, loaded once into a Board."""
    return click.option("--board", default="pynq-z2", show_default=True, callback=_to_board, help=help_text)


run_argument = click.argument("run", type=click.Path(file_okay=False), callback=_to_rundir)
def _to_headroom(ctx, param, value):
    if not 0 < value <= 1:  # also refuses nan
        raise click.BadParameter(f"expected a fraction in (0, 1], got {value!r}", ctx, param)
    return value


headroom_option = click.option("--headroom", type=float, default=HEADROOM, show_default=True, callback=_to_headroom,
                               help="Fraction of each board resource the design may use.")
training_options = _stack(
    click.option("--model", default="mlp", show_default=True,
                 help="'mlp', 'cnn', 'resnet-tiny', 'resnet8', or your own: 'path/to/file.py:function' "
                      "(see docs/user-guide.md)."),
    click.option("--dataset", default="digits", show_default=True,
                 help="'digits' (embedded), 'mnist5k' (pip install 'msq[mnist]'), 'synthetic:HxWxC:K' (generated, for "
                      "hardware checks) or a .npz file (docs/datasets.md)."),
    click.option("--wbits", type=int, default=4, show_default=True, help="Weight bits, 2..8."),
    click.option("--abits", type=int, default=4, show_default=True, help="Activation bits, 2..8."),
    click.option("--board", default="pynq-z2", show_default=True,
                 help="Board name from boards/ or a path to a board .yaml; decides the SP2 ratio."),
    click.option("--sp2-ratio", type=float, default=None,
                 help="Fraction of SP2 rows per layer, in [0, 1]; default: the fastest the planner finds for the board."),
    click.option("--epochs", type=int, default=40, show_default=True),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--high-bits", type=int, default=8, show_default=True,
                 help="Bit width of the high-precision fixed-point rows (used when --high-fraction > 0)."),
    click.option("--high-fraction", type=float, default=0.0, show_default=True,
                 help="Fraction of rows per layer at --high-bits (intra-layer multi-precision), in [0, 1]."))
# How training runs (not what it trains): passed to TrainConfig as they are named.
run_options = _stack(
    click.option("--lr", type=float, default=3e-3, show_default=True, help="Adam learning rate, in (0, 1)."),
    click.option("--batch-size", type=int, default=64, show_default=True, help="Mini-batch size (per process under torchrun)."),
    click.option("--device", default="auto", show_default=True,
                 help="auto (CUDA when available, else the CPU), cpu, cuda or cuda:N."),
    click.option("--layout", type=click.Choice(["nchw", "nhwc"]), default="nchw", show_default=True,
                 help="How a .npz dataset stores its images: nhwc (channels-last) is converted."))


def _plan(run, plan_path):
    """The engine plan of ``--plan`` for the run's IR (``None``: one lane per engine)."""
    from msq.ir.plan import load_plan

    return load_plan(run.ir, plan_path)


@click.group()
@click.version_option(package_name="msq")
@click.option("--debug", is_flag=True, help="Show the Python traceback of an error instead of one line.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors: no progress bars, no results (for scripts).")
@click.pass_context
def main(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """MSQ: mixed-scheme (SP2 + fixed-point) quantization from PyTorch to FPGA."""
    reports = ctx.obj = _Reports(quiet)
    ctx.call_on_close(reports.close)
    if quiet:  # results are printed to stdout: send them nowhere; errors go to stderr
        ctx.with_resource(contextlib.redirect_stdout(ctx.with_resource(open(os.devnull, "w"))))


@main.command()
@training_options
@click.option("--scheme", type=click.Choice(TRAINING_SCHEMES), default="msq", show_default=True,
              help="float (no quantization), every row fixed / p2 / sp2, or msq (SP2 and fixed rows mixed).")
@click.option("--out", required=True, help="Run directory to write (e.g. runs/NAME).")
@run_options
@_clear_errors
def train(model, dataset, wbits, abits, board, sp2_ratio, epochs, seed, high_bits, high_fraction, scheme,
          out, **run_settings) -> None:
    """Quantization-aware training; writes model.pt, assignment.json and metrics.json.
    Under torchrun it trains with DistributedDataParallel and rank 0 writes the run."""
    from msq.frontend.train import TrainConfig, train_run

    cfg = TrainConfig(model=model, dataset=dataset, wbits=wbits, abits=abits, scheme=scheme, board=board,
                      sp2_ratio=sp2_ratio, epochs=epochs, seed=seed, high_bits=high_bits, high_fraction=high_fraction,
                      **run_settings)
    metrics = train_run(cfg, out, _progress())
    acc = metrics["accuracy"]
    click.echo(f"test accuracy ({acc['kind']}): {acc['test']:.2f}%")
    click.echo(f"SP2 rows: {100 * metrics['sp2_fraction']['overall']:.1f}% "
               f"(ratio {metrics['sp2_ratio']['requested']:.3f} from {metrics['sp2_ratio']['source']})")
    for name, layer in metrics["sp2_fraction"]["per_layer"].items():
        high = f", {layer['high_rows']} at {high_bits} bits" if layer["high_rows"] else ""
        click.echo(f"  layer {name}: {layer['sp2_rows']}/{layer['rows']} SP2 rows{high}")
    click.echo(f"wrote {out}/model.pt, assignment.json, metrics.json")


@main.command()
@run_argument
@click.option("--out", default=None, help="Where to write [default: RUN/ir, or RUN/qonnx.onnx for --format qonnx].")
@click.option("--format", "fmt", type=click.Choice(["ir", "qonnx"]), default="ir", show_default=True,
              help="ir: freeze the trained run into the integer IR; qonnx: write RUN/ir as an exact QONNX model.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batch size of the QONNX model's input (QONNX's executor needs fixed shapes).")
@click.option("--model", default=None,
              help="For a run of your own model: its 'path/to/file.py:function' (a checkpoint never names code to run).")
@_clear_errors
def export(run, out, fmt, batch, model) -> None:
    """Freeze a trained run into the integer IR and print a per-layer summary (or write it as QONNX)."""
    from msq.ir.summary import summary_table

    if fmt == "qonnx":
        from msq.backends.qonnx_export import save_qonnx

        path = save_qonnx(run.ir, out or run.qonnx_onnx, batch)
        click.echo(f"wrote {path} (QONNX, batch {batch}, from {run.ir_dir})")
        return
    from msq.frontend.export import export_run

    ir, path = export_run(run.path, out or run.ir_dir, model)
    click.echo(summary_table(ir))
    click.echo(f"wrote {path}/manifest.json, arrays.npz")


@main.command(name="import")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, help="Run directory to write its IR in (RUN/ir), for msq hls/rtl/plan.")
@click.option("--dataset", default=None,
              help="Dataset whose test set becomes the test vectors of msq hls/rtl [default: random inputs].")
@_clear_errors
def import_(model, out, dataset) -> None:
    """Import a fixed-point QONNX model (Brevitas export_qonnx, FINN) into the integer IR."""
    from msq.frontend.qonnx_import import import_run
    from msq.ir.summary import summary_table

    ir, path = import_run(model, out, dataset)
    click.echo(summary_table(ir))
    click.echo(f"wrote {path}/manifest.json, arrays.npz")


@main.command(name="eval")
@run_argument
@_clear_errors
def eval_(run) -> None:
    """Deployed (integer reference) accuracy on the test set beside the fake-quant accuracy."""
    result = run.evaluate()
    click.echo(f"fake-quant accuracy: {result['fake_quant_accuracy']:.2f}%")
    click.echo(f"deployed accuracy (integer reference): {result['deployed_accuracy']:.2f}% "
               f"on {result['samples']} test samples ({result['reference_seconds'] * 1e3:.1f} ms)")
    ti = result["torch_int"]
    click.echo(f"frozen PyTorch integer path vs reference: mismatches: {ti['mismatches']} on {ti['samples']} inputs")
    click.echo(f"wrote {run.eval_json}")


@main.command()
@run_argument
@click.option("--out", default=None, help="Project directory to write [default: RUN/hls].")
@board_option("Board name from boards/ or a path to a board .yaml (part and clock).")
@click.option("--plan", "plan_path", default=None, help="Engine plan JSON (lanes per layer) [default: one lane each].")
@click.option("--vitis", "step", type=click.Choice(["csim", "csynth", "cosim", "export"]), default=None,
              help="Also run Vitis HLS (vitis-run or vitis_hls on PATH) up to this step.")
@_clear_errors
def hls(run, out, board, plan_path, step) -> None:
    """Write a Vitis HLS project (C++, testbench, Tcl) from RUN/ir and the run's test set."""
    from pathlib import Path

    from msq.backends.hls.project import read_project
    from msq.backends.hls.vitis import invoke_vitis

    project = run.write_hls(board, _plan(run, plan_path), Path(out) if out else None)
    meta = read_project(project)
    click.echo(f"wrote {project}: {meta['samples']['total']} test vectors "
               f"({meta['samples']['inputs']} test set + {meta['samples']['extreme']} extreme/random), "
               f"part {meta['part']} at {meta['clock_mhz']:g} MHz")
    if step is None:
        return
    report = invoke_vitis(project, step)
    if report is not None:
        lat, res = report["latency_cycles"], report["resources"]
        click.echo(f"latency {lat['best']}..{lat['worst']} cycles, interval {report['interval_cycles']['max']}, "
                   f"estimated clock {report['estimated_clock_ns']} ns")
        click.echo("resources: " + ", ".join(f"{k} {v}/{report['available'].get(k, '?')}" for k, v in res.items()))
        click.echo(f"wrote {project}/csynth_report.json")


@main.command()
@click.argument("project", type=click.Path(file_okay=False))
@_clear_errors
def csim(project) -> None:
    """Bit-exact C simulation of an HLS project with g++ against the integer reference."""
    from msq.backends.hls.csim import c_simulate

    result = c_simulate(project)
    click.echo(f"compiled in {result.compile_seconds:.1f} s, simulated {result.samples} inputs "
               f"in {result.run_seconds:.2f} s")
    if result.warnings and not _progress().quiet:  # warnings, not errors: --quiet drops them
        click.echo(f"compiler warnings:\n{result.warnings}", err=True)
    click.echo(f"mismatches: {result.mismatches}")
    click.echo(f"wrote {result.report}")
    if result.mismatches:
        sys.exit(1)


@main.command()
@run_argument
@click.option("--out", default=None, help="Project directory to write [default: RUN/rtl].")
@click.option("--plan", "plan_path", default=None,
              help="Engine plan JSON (lanes per layer), or 'auto': the planner's for --board [default: one lane each].")
@board_option("Board the 'auto' plan must fit; its family places the pipeline registers.")
@_clear_errors
def rtl(run, out, plan_path, board) -> None:
    """Write synthesizable Verilog (layer pipeline, AXI-Stream top msq_top) from RUN/ir and its test set."""
    from pathlib import Path

    from msq.backends.rtl.generate import read_design
    from msq.backends.rtl.lint import lint

    if plan_path == "auto":
        result, plan_path = run.plan(board)
        click.echo(f"planned for {board.name}: wrote {plan_path}")
    project = run.write_rtl(_plan(run, plan_path), Path(out) if out else None, board)
    meta = read_design(project)
    cyc = meta["cycles"]
    click.echo(f"wrote {project}: {len(meta['sources'])} Verilog files, {meta['samples']['total']} test vectors "
               f"({meta['samples']['inputs']} test set + {meta['samples']['extreme_random']} extreme/random)")
    click.echo(f"cycles per inference {cyc['interval']}, latency {cyc['latency']} cycles; per layer: "
               + ", ".join(f"{k} {v}" for k, v in cyc["layers"].items()))
    clean, messages = lint(project)
    click.echo("verilator --lint-only -Wall: " + ("clean" if clean else f"warnings\n{messages}"))


@main.command()
@click.argument("project", type=click.Path(file_okay=False))
@click.option("--simulator", type=click.Choice(["verilator", "icarus"]), default="verilator", show_default=True)
@click.option("--waves", is_flag=True, help="Write an FST waveform to PROJECT/sim/SIMULATOR/msq_top.fst.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bubbles and back-pressure.")
@click.option("--sources", "sources_dir", default=None, type=click.Path(file_okay=False),
              help="Simulate the Verilog files in this directory instead (e.g. a Vitis-exported msq_top).")
@_clear_errors
def sim(project, simulator, waves, seed, sources_dir) -> None:
    """Simulate an RTL project with cocotb and compare every output with the integer reference."""
    from pathlib import Path

    from msq.backends.rtl.simulate import simulate

    sources = None
    if sources_dir:
        sources = sorted(p for p in Path(sources_dir).iterdir() if p.suffix in (".v", ".sv"))
        if not sources:
            raise MSQError(f"{sources_dir}: no .v or .sv files")
    result = simulate(project, simulator=simulator, waves=waves, seed=seed, sources=sources, progress=_progress())
    click.echo(f"{simulator}: {result['samples']} inferences checked ({result['samples'] * result['outputs_per_sample']} "
               f"outputs) with random bubbles and back-pressure in {result['run_seconds']:.1f} s")
    click.echo(f"latency {result['latency_cycles']} cycles, cycles per inference {result['cycles_per_inference']} "
               f"(model: {result['expected_cycles']['latency']}, {result['expected_cycles']['interval']})")
    if "waves" in result:
        click.echo(f"waves: {result['waves']}")
    click.echo(f"mismatches: {len(result['mismatches'])}")
    if result["mismatches"]:
        click.echo(f"wrote {result['mismatches_file']}")
        sys.exit(1)


@main.command()
@click.argument("rtl_dir", type=click.Path(file_okay=False))
@board_option()
@click.option("--tool", type=click.Choice(["auto", "vivado", "yosys"]), default="auto", show_default=True,
              help="auto: Vivado when `vivado` is on PATH, else Yosys.")
@_clear_errors
def synth(rtl_dir, board, tool) -> None:
    """Synthesize a generated RTL project; write RTL_DIR/synth/synth.json and the Vivado Tcl."""
    from msq.backends.synth.driver import synthesize

    click.echo(f"synthesizing {rtl_dir} for {board.name} ({board.part}) ...")
    s = synthesize(rtl_dir, board, tool, progress=_progress())
    click.echo(f"{s['tool']} ({s['version'][:60]}), {s['seconds']:.0f} s")
    for key, u in s["utilization"].items():
        click.echo(f"  {key.upper():6s} {u['used']:>9g} / {u['available']:<8g} ({u['percent']:5.2f} %)")
    if s.get("carry") is not None:
        click.echo(f"  CARRY  {s['carry']:>9d}")
    if s.get("fmax_mhz") is not None:
        click.echo(f"  Fmax {s['fmax_mhz']:.1f} MHz (place and route, target {board.clock_mhz:g} MHz)")
    timing = s.get("vivado_timing") or {}
    if timing.get("wns_ns") is not None:
        fmax = f", Fmax {timing['fmax_mhz']:.1f} MHz" if timing.get("fmax_mhz") else ""
        click.echo(f"  WNS {timing['wns_ns']:.3f} ns{fmax} (Vivado, post-synthesis)")
    if s.get("lut_levels") is not None:
        click.echo(f"  logic depth {s['lut_levels']} LUTs between registers")
        for name, inst in s.get("instances", {}).items():
            click.echo(f"    {name:12s} LUT {inst['lut']:>7d}  FF {inst['ff']:>7d}  DSP {inst['dsp']:>4d}  "
                       f"BRAM {inst['bram36']:>5g}  {inst['lut_levels']} LUT levels")
    extra = s.get("vivado_tcl") or s.get("replay_script")
    click.echo(f"wrote {rtl_dir}/synth/synth.json" + (f" and {extra}" if extra else ""))


@main.command()
@run_argument
@board_option("Zynq-7000 board from boards/ with a 'board_part' (Vivado board files), or a path to one.")
@click.option("--from", "source", type=click.Choice(["rtl", "hls"]), default="rtl", show_default=True,
              help="rtl: RUN/rtl's Verilog packaged as an IP; hls: the IP Vitis HLS exports from RUN/hls.")
@click.option("--out", default=None, help="Deployment directory to write [default: RUN/deploy].")
@_clear_errors
def deploy(run, board, source, out) -> None:
    """Write a Vivado block design (PS7 + AXI DMA + the core) that builds msq.bit/.hwh, and a PYNQ driver."""
    from pathlib import Path

    from msq.backends.deploy.project import DRIVER, TCL, read_deploy, write_deploy

    project = run.require(run.rtl_dir if source == "rtl" else run.hls_dir, source)
    path = write_deploy(project, board, Path(out) if out else run.deploy_dir, source)
    fmt = read_deploy(path)["stream"]
    click.echo(f"wrote {path}: {TCL} (part {board.part}, {board.board_part}), {DRIVER}")
    click.echo(f"DMA streams: x_in {fmt['in_tdata_bits']} bits x {fmt['in_beats']} beats, "
               f"y_out {fmt['out_tdata_bits']} bits x {fmt['out_beats']} beats per inference (TLAST on the last)")
    click.echo(f"next: cd {path} && vivado -mode batch -source {TCL}; copy msq.bit, msq.hwh and {DRIVER} to the board")


@main.command()
@training_options
@click.option("--simulator", type=click.Choice(["verilator", "icarus"]), default="verilator", show_default=True)
@click.option("--synth-tool", type=click.Choice(["auto", "vivado", "yosys"]), default="auto", show_default=True)
@click.option("--out", required=True, help="Run directory (re-running resumes from the first changed stage).")
@click.option("--until", default=None, help="Last stage to run, e.g. 'rtl' (train, baseline, export, eval, plan, "
              "hls, csim, rtl, rtlsim, synth) [default: all].")
@run_options
@_clear_errors
def flow(model, dataset, wbits, abits, board, sp2_ratio, epochs, seed, high_bits, high_fraction, simulator,
         synth_tool, out, until, **run_settings) -> None:
    """Train → export → HLS + C-sim → Verilog + simulation → synthesis → report."""
    from msq.boards import load_board
    from msq.flow import Flow, FlowConfig
    from msq.frontend.train import TrainConfig

    cfg = FlowConfig(TrainConfig(model=model, dataset=dataset, wbits=wbits, abits=abits, scheme="msq",
                                 board=board, sp2_ratio=sp2_ratio, epochs=epochs, seed=seed,
                                 high_bits=high_bits, high_fraction=high_fraction, **run_settings),
                     out=out, simulator=simulator, synth_tool=synth_tool, until=until)
    s = Flow(cfg, load_board(board), progress=_progress()).execute()
    acc = s["accuracy"]
    click.echo(f"\nsummary ({out}/summary.json):")
    click.echo(f"  accuracy: float {acc.get('float', float('nan')):.2f}%, fake-quant {acc['fake_quant']:.2f}%, "
               f"deployed {acc['deployed']:.2f}%; SP2 rows {100 * s['sp2_fraction']:.1f}%")
    for rung in s["ladder"]:
        click.echo(f"  {rung['check']}: mismatches: {rung['mismatches']} ({rung['samples']} inputs)")
    if "synth" in s:
        syn = s["synth"]
        click.echo(f"  {syn['tool']}: LUT {syn['lut']}, FF {syn['ff']}, DSP {syn['dsp']}, BRAM {syn['bram36']:g} "
                   f"on {syn['board']}")
    if "rtlsim" in s:
        click.echo(f"  {s['rtlsim']['cycles_per_inference']:g} cycles/inference at {s['clock_mhz']:g} MHz: "
                   f"{s['throughput_inferences_per_s']:,.0f} inferences/s")
    click.echo(f"  report: {out}/report/report.html")


@main.command()
@run_argument
@_clear_errors
def report(run) -> None:
    """Write RUN/report/report.html (self-contained) and report.md from a flow's outputs."""
    from msq.report import write_report

    html_path, md_path = write_report(run)
    click.echo(f"wrote {html_path} and {md_path}")


@main.command()
@click.option("--out", default=None, help="Table to write [default: msq/data/calibration.json].")
@click.option("--only", "kinds", multiple=True,
              help="Re-measure only this kind of cell (repeatable, e.g. sp2_engine); keep the table's others.")
@_clear_errors
def calibrate(out, kinds) -> None:
    """Synthesize the engines and overhead blocks with Yosys; write the cost table."""
    from msq.assets import CALIBRATION_JSON
    from msq.design.calibrate import calibrate as run_calibration

    table = run_calibration(out or CALIBRATION_JSON, progress=_progress(), kinds=list(kinds) or None)
    click.echo(f"wrote {out or CALIBRATION_JSON} ({table['yosys_version'][:40]})")


@main.command()
@run_argument
@board_option()
@headroom_option
@click.option("--out", default=None, help="Plan JSON to write [default: RUN/plan.json].")
@_clear_errors
def plan(run, board, headroom, out) -> None:
    """Choose each layer's SP2/fixed lanes: the fastest balanced design that fits the board."""
    from pathlib import Path

    b = board
    res, path = run.plan(board, headroom, Path(out) if out else None)
    for name, p in res.plan.layers.items():
        click.echo(f"  {name}: {p.summary()}")
    click.echo(f"  streams: {res.plan.in_width} input and {res.plan.out_width} output elements per beat")
    r = res.resources
    click.echo(f"interval {res.interval} cycles, latency {res.latency} cycles: "
               f"{res.throughput(b.clock_mhz):,.0f} inferences/s at {b.clock_mhz:g} MHz")
    click.echo(f"estimated LUT {r.lut:g}/{b.lut}, FF {r.ff:g}/{b.ff}, DSP {r.dsp}/{b.dsp}, BRAM {r.bram36:g}/{b.bram36}")
    click.echo(f"wrote {path} (use it with: msq rtl {run} --plan {path})")


@main.command()
@run_argument
@board_option()
@headroom_option
@click.option("--out", default=None, help="Directory for explore.json and pareto.png [default: RUN/explore/BOARD].")
@_clear_errors
def explore(run, board, headroom, out) -> None:
    """Sweep the SP2 ratio x planner lanes: throughput vs resources, best design, Pareto plot."""
    from pathlib import Path

    result, path = run.explore(board, headroom, Path(out) if out else None)
    click.echo(f"{result['note']}")
    click.echo(f"{'ratio':>5} {'SP2 rows':>9} {'interval':>9} {'inf/s':>11} {'LUT':>8} {'FF':>8} {'DSP':>5} fits")
    for p in result["points"]:
        if p["fits"]:
            click.echo(f"{p['ratio']:>5.1f} {p['sp2_rows']:>4}/{p['rows']:<4} {p['interval']:>9} "
                       f"{p['throughput']:>11,.0f} {p['lut']:>8} {p['ff']:>8} {p['dsp']:>5} yes"
                       + ("  <- best" if result["best"] and p["ratio"] == result["best"]["ratio"] else ""))
        else:
            click.echo(f"{p['ratio']:>5.1f} {p['sp2_rows']:>4}/{p['rows']:<4} does not fit")
    click.echo(f"Pareto front (ratios): {', '.join(f'{r:g}' for r in result['pareto'])}")
    click.echo(f"wrote {path}/explore.json and {path}/pareto.png")


if __name__ == "__main__":
    main()
