"""Training throughput of every cell kind, beside the machine's measured matmul speed.

    python -m benchmarks.cells                          # batch 64, 50 steps, 100 inputs, 128 units
    python -m benchmarks.cells --kinds lstm peephole_lstm --steps 100 --json

For each kind and with / without XLA (`jit_compile`): one recurrent layer
(return_sequences) and a mean-squared loss on its outputs, one Adam step per
measured call of `train_on_batch`, after warm-up calls (compilation excluded).
Reports ms/step (median and interquartile range over the measured steps),
tokens/s (batch × time steps / s), and the achieved fraction of the machine's
fp32 matmul FLOP/s, measured in the same run with a 2048³ `keras.ops.matmul`.

It runs on whichever Keras backend `KERAS_BACKEND` selects (TensorFlow by
default; the cells use `keras.ops` only), so a machine without TensorFlow, a GPU
machine with JAX or PyTorch say, gives the same table:

    KERAS_BACKEND=jax python -m benchmarks.cells --xla on      # XLA through jax.jit
    KERAS_BACKEND=torch python -m benchmarks.cells --xla off   # eager PyTorch, cuDNN for the built-ins

"XLA off" on JAX is JAX's op-by-op mode, and "on" on PyTorch is `torch.compile`.
On a GPU, JAX and PyTorch may run fp32 matrix products in TF32 (both for the
reference product and the cells, so the fraction compares like with like).

FLOPs counted for a cell: its matrix products, 2 FLOPs per multiply-add, forward
over all time steps, times 3 for forward + backward (the backward pass multiplies
by both the weights and the inputs): per step 2 · B · (I + U) · G · U for G gate
blocks (Elman, SimpleRNN 1; GRU 3; LSTM and peephole LSTM 4) and for Jordan
2 · B · (I · U + O · U + U · O) with O output units (= U here). Element-wise work
(activations, peepholes, gates) is left out, so the fraction is an upper bound
of what the matrix products alone achieve.
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

from benchmarks.common import device, time_calls  # noqa: E402
from layers import CELL_KINDS, RecurrentStack  # noqa: E402

GATE_BLOCKS = {"elman": 1, "simple_rnn": 1, "gru": 3, "lstm": 4, "peephole_lstm": 4}


def synchronize(tensor):
    """Wait until `tensor` is computed (GPU work is asynchronous), without copying it to the host."""
    backend = keras.backend.backend()
    if backend == "jax":
        tensor.block_until_ready()
    elif backend == "torch":
        import torch

        if tensor.is_cuda:
            torch.cuda.synchronize()
    else:
        ops.convert_to_numpy(ops.sum(tensor))


def matmul_gflops(size=2048, repeats=10):
    """The machine's fp32 matmul speed: median GFLOP/s of `repeats` size³ products."""
    generator = np.random.default_rng(0)
    a = ops.convert_to_tensor(generator.normal(size=(size, size)).astype("float32"))
    b = ops.convert_to_tensor(generator.normal(size=(size, size)).astype("float32"))
    synchronize(ops.matmul(a, b))  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        synchronize(ops.matmul(a, b))
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def cell_flops(kind, batch, steps, inputs, units):
    """FLOPs of one training step (forward + backward) of the cell's matrix products."""
    if kind == "jordan":
        forward = 2 * batch * (inputs * units + units * units + units * units)
    else:
        forward = 2 * batch * (inputs + units) * GATE_BLOCKS[kind] * units
    return 3 * forward * steps


def measure(kind, xla, batch, steps, inputs, units, warmup, repeats, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((steps, inputs)), RecurrentStack(kind, units)], name=kind)
    model.compile(optimizer="adam", loss="mse", jit_compile=xla)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, inputs)).astype("float32")
    y = rng.normal(size=(batch, steps, units)).astype("float32")
    figures = time_calls(lambda: model.train_on_batch(x, y), repeats, warmup)
    return {
        "ms_per_step": figures["ms"],
        "iqr_ms": figures["iqr_ms"],
        "tokens_per_s": batch * steps / (figures["ms"] / 1000),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", choices=CELL_KINDS, default=list(CELL_KINDS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50, help="time steps per sequence (default: %(default)s)")
    parser.add_argument("--inputs", type=int, default=100)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=5, help="calls before measuring (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=30, help="measured calls (default: %(default)s)")
    parser.add_argument("--xla", choices=("both", "on", "off"), default="both")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per measurement")
    parser.add_argument("--save", metavar="FILE", help="also write the JSON list to FILE")
    options = parser.parse_args(argv)

    gflops = matmul_gflops()
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[options.xla]
    shape = dict(batch=options.batch, steps=options.steps, inputs=options.inputs, units=options.units)
    results = []
    for kind in options.kinds:
        for xla in modes:
            figures = measure(kind, xla, warmup=options.warmup, repeats=options.repeats, **shape)
            flops = cell_flops(kind, **shape)
            figures["gflops"] = flops / (figures["ms_per_step"] / 1000) / 1e9
            figures["flop_fraction"] = figures["gflops"] / gflops
            results.append({"cell": kind, "xla": xla, **figures, **shape, "matmul_gflops": gflops,
                            "backend": keras.backend.backend(), "device": device()})  # fmt: skip
            if not options.json:
                r = results[-1]
                print(f"  measured {kind} xla={'on' if xla else 'off'}: {r['ms_per_step']:.1f} ms/step", flush=True)
    if options.save:
        with open(options.save, "w") as file:
            json.dump(results, file, indent=1)
    if options.json:
        print(json.dumps(results, indent=1))
        return 0
    # The reference is Keras' LSTM as users run it: without XLA where measured.
    lstm = {r["xla"]: r["tokens_per_s"] for r in results if r["cell"] == "lstm"}
    baseline_xla = False if False in lstm else True
    print(f"\nshape: batch {options.batch}, {options.steps} steps, {options.inputs} inputs, {options.units} units; "
          f"matmul {gflops:.1f} GFLOP/s (fp32, 2048³); {results[0]['device']}; "
          f"Keras {keras.__version__}, {keras.backend.backend()} backend\n")  # fmt: skip
    reference = f"× Keras LSTM (XLA {'on' if baseline_xla else 'off'})" if lstm else "× Keras LSTM (not measured)"
    print(f"| cell | XLA | ms/step (median) | IQR ms | tokens/s | {reference} | GFLOP/s | of matmul |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        ratio = r["tokens_per_s"] / lstm[baseline_xla] if lstm else float("nan")
        print(f"| {r['cell']} | {'on' if r['xla'] else 'off'} | {r['ms_per_step']:.1f} | {r['iqr_ms']:.1f} | "
              f"{r['tokens_per_s']:,.0f} | {ratio:.2f} | {r['gflops']:.1f} | {100 * r['flop_fraction']:.0f} % |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
