"""The ``msq`` command line: one sub-command per pipeline stage."""
from __future__ import annotations

import sys
from functools import wraps

import click

from msq.errors import MSQError
from msq.frontend.models import MODELS, SCHEMES


def _clear_errors(fn):
    """Turn MSQError into a one-line message and exit code 2 instead of a traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except MSQError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


@click.group()
@click.version_option(package_name="msq")
def main() -> None:
    """MSQ: mixed-scheme (SP2 + fixed-point) quantization from PyTorch to FPGA."""


@main.command()
@click.option("--model", type=click.Choice(MODELS), default="mlp", show_default=True)
@click.option("--dataset", default="digits", show_default=True,
              help="'digits' (embedded) or a path to a .npz file (see docs/datasets.md).")
@click.option("--wbits", type=int, default=4, show_default=True, help="Weight bits, 2..8.")
@click.option("--abits", type=int, default=4, show_default=True, help="Activation bits, 2..8.")
@click.option("--scheme", type=click.Choice(SCHEMES), default="msq", show_default=True)
@click.option("--board", default="pynq-z2", show_default=True,
              help="Board name from boards/ or a path to a board .yaml.")
@click.option("--sp2-ratio", type=float, default=None,
              help="Fraction of SP2 rows per layer, in [0, 1]; default: balanced for the board.")
@click.option("--epochs", type=int, default=40, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", required=True, help="Run directory to write (e.g. runs/NAME).")
@_clear_errors
def train(model, dataset, wbits, abits, scheme, board, sp2_ratio, epochs, seed, out) -> None:
    """Quantization-aware training; writes model.pt, assignment.json and metrics.json."""
    from msq.frontend.train import TrainConfig, train_run

    cfg = TrainConfig(model=model, dataset=dataset, wbits=wbits, abits=abits, scheme=scheme,
                      board=board, sp2_ratio=sp2_ratio, epochs=epochs, seed=seed)
    metrics = train_run(cfg, out)
    acc = metrics["accuracy"]
    click.echo(f"test accuracy ({acc['kind']}): {acc['test']:.2f}%")
    click.echo(f"SP2 rows: {100 * metrics['sp2_fraction']['overall']:.1f}% "
               f"(ratio {metrics['sp2_ratio']['requested']:.3f} from {metrics['sp2_ratio']['source']})")
    for name, layer in metrics["sp2_fraction"]["per_layer"].items():
        click.echo(f"  layer {name}: {layer['sp2_rows']}/{layer['rows']} SP2 rows")
    click.echo(f"wrote {out}/model.pt, assignment.json, metrics.json")


@main.command()
@click.argument("run", type=click.Path(file_okay=False))
@click.option("--out", default=None, help="IR directory to write [default: RUN/ir].")
@_clear_errors
def export(run, out) -> None:
    """Freeze a trained run into the integer IR and print a per-layer summary."""
    from msq.frontend.export import export_run
    from msq.ir.summary import summary_table

    ir, path = export_run(run, out)
    click.echo(summary_table(ir))
    click.echo(f"wrote {path}/manifest.json, arrays.npz")


@main.command(name="eval")
@click.argument("run", type=click.Path(file_okay=False))
@_clear_errors
def eval_(run) -> None:
    """Deployed (integer reference) accuracy on the test set beside the fake-quant accuracy."""
    from msq.evaluate import evaluate_run

    result = evaluate_run(run)
    click.echo(f"fake-quant accuracy: {result['fake_quant_accuracy']:.2f}%")
    click.echo(f"deployed accuracy (integer reference): {result['deployed_accuracy']:.2f}% "
               f"on {result['samples']} test samples ({result['reference_seconds'] * 1e3:.1f} ms)")
    click.echo(f"wrote {run}/eval.json")


if __name__ == "__main__":
    main()
