"""`cnn export`, `cnn serve`, `cnn bench`: models outside the trainer, and how fast they run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .app import CONFIG_HELP, DATA_DIR_HELP, app, user_errors_exit_2, wide_console


@app.command()
@user_errors_exit_2
def export(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by cnn train (best.npz or last.npz)."),
    fmt: str = typer.Option("onnx", "--format", help="onnx (needs the onnx extra) or torch (a state_dict; needs PyTorch)."),
    out: Optional[Path] = typer.Option(None, "--out", help="File to write (default: the checkpoint's name with .onnx or .pt)."),
):
    """The trained network as an ONNX model (preprocessing and class names inside) or a PyTorch state_dict."""
    from ..commands.export import run_export

    print(run_export(checkpoint, fmt, out).summary)


@app.command()
@user_errors_exit_2
def serve(
    checkpoint: Path = typer.Argument(..., help="A checkpoint written by cnn train (best.npz or last.npz)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 exposes the page to your network)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP + " Its test digits feed 'show a test digit'."),
):
    """A local page: draw a digit, see the top-3 probabilities, the MNIST-style preprocessing and every feature map."""
    from ..commands.serve import run_serve
    from ..data.download import resolve_data_dir

    run_serve(checkpoint, host, port, resolve_data_dir(data_dir))


@app.command()
@user_errors_exit_2
def bench(
    config: str = typer.Argument("lenet5", help=CONFIG_HELP),
    batch_sizes: str = typer.Option("1,16,64,256", "--batch-sizes", help="Training and inference batch sizes, comma-separated."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Threads for numba and PyTorch (default: all cores)."),
    against: Optional[str] = typer.Option(
        None, "--against", help="torch: build the same network in PyTorch and time it in the same run, interleaved with ours."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print every figure as JSON."),
    repeat: int = typer.Option(5, "--repeat", help="Repetitions per figure; the median is reported."),
    min_time: float = typer.Option(1.0, "--min-time", help="Seconds each repetition lasts at least."),
    inference_batch: int = typer.Option(1000, "--inference-batch", help="Extra, large batch size for inference."),
    layer_batch: int = typer.Option(64, "--layer-batch", help="Batch size of the per-layer forward/backward breakdown."),
    no_compile: bool = typer.Option(
        False, "--no-compile", help="Skip the JIT compile figures (two subprocesses: empty cache, then filled cache)."
    ),
):
    """Images/s of the training step and inference per batch size, per-layer times and JIT compile times; --against torch for same-run ratios."""
    import json

    # BLAS pools: kernels/runtime/blas.py limits NumPy's and SciPy's to one thread (Numba owns the cores); PyTorch's follow
    # --threads. The JSON's machine.thread_pools records what was loaded and its size.
    from ..commands.bench import BenchOptions, parse_batch_sizes, run_bench
    from ..commands.bench_render import render_bench

    options = BenchOptions(config=config, batch_sizes=parse_batch_sizes(batch_sizes), threads=threads,
                           against=against, repeat=repeat, min_time=min_time, inference_batch=inference_batch,
                           layer_batch=layer_batch, compile=not no_compile)

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    result = run_bench(options, progress)
    if json_out:
        print(json.dumps(result))
        return
    console = wide_console(140)
    for renderable in render_bench(result):
        console.print(renderable)
