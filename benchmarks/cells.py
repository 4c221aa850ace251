"""Training throughput of every cell kind, beside the machine's measured matmul speed.

    python -m benchmarks.cells                          # batch 64, 50 steps, 100 inputs, 128 units
    python -m benchmarks.cells --peers                  # and PyTorch's nn.LSTM / nn.GRU / nn.RNN
    python -m benchmarks.cells --kinds lstm peephole_lstm --steps 100 --repeat 5 --json
    python -m benchmarks.cells --peers --unroll --threads 1 2   # unrolled loops; TensorFlow's thread pools

For each kind and with / without XLA (`jit_compile`): one recurrent layer
(return_sequences) and a mean-squared loss on its outputs, one Adam step per
measured call of `train_on_batch`, after warm-up calls (compilation excluded).
Every measurement is repeated in `--repeat` rounds, interleaved (round 1 of every
cell, then round 2, ...), so that the machine's drift falls on all of them alike;
a round's figure is the median of its calls. Reports ms/step (the median of the
rounds, and each round's), tokens/s (batch × time steps / s), the ratio to Keras'
LSTM and to the matching PyTorch layer (ratio of the medians, with the smallest
and largest ratio of one round), and the achieved fraction of the machine's fp32
matmul FLOP/s, measured in the same run with a 2048³ `keras.ops.matmul`.

`--peers` times PyTorch's layer at the same shape, the same loss and Adam, eager on
the CPU as its users run it (an optional requirement:
`pip install -r benchmarks/requirements-peers.txt`).

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
# The PyTorch layer a user would pick instead of each cell (a Jordan cell, like Elman's, is
# one tanh layer: nn.RNN is its nearest peer), and the cell whose FLOP count a peer shares.
PEERS = {"elman": "RNN", "simple_rnn": "RNN", "jordan": "RNN", "gru": "GRU", "lstm": "LSTM", "peephole_lstm": "LSTM"}
PEER_FLOPS = {"RNN": "simple_rnn", "GRU": "gru", "LSTM": "lstm"}


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


def keras_step(kind, xla, batch, steps, inputs, units, unroll=False, seed=0):
    """One Adam step of one recurrent layer under a mean-squared loss, as a call."""
    keras.utils.set_random_seed(seed)
    layer = RecurrentStack(kind, units, cell_kwargs={"unroll": True} if unroll else None)
    model = keras.Sequential([keras.Input((steps, inputs)), layer], name=kind)
    model.compile(optimizer="adam", loss="mse", jit_compile=xla)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, inputs)).astype("float32")
    y = rng.normal(size=(batch, steps, units)).astype("float32")
    return lambda: model.train_on_batch(x, y)


def torch_step(peer, batch, steps, inputs, units, seed=0):
    """The same step with PyTorch's `nn.LSTM` / `nn.GRU` / `nn.RNN` (tanh) on the CPU, eager, as
    its users write it; PyTorch is an optional benchmark requirement (benchmarks/requirements-peers.txt)."""
    try:
        import torch
    except ImportError:
        raise SystemExit(
            "--peers needs PyTorch, an optional benchmark requirement: pip install -r benchmarks/requirements-peers.txt"
        ) from None
    torch.manual_seed(seed)
    layer = getattr(torch.nn, peer)(inputs, units, batch_first=True)
    optimizer = torch.optim.Adam(layer.parameters())
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.normal(size=(batch, steps, inputs)).astype("float32"))
    y = torch.from_numpy(rng.normal(size=(batch, steps, units)).astype("float32"))

    def step():
        optimizer.zero_grad()
        outputs, _ = layer(x)
        loss = torch.mean((outputs - y) ** 2)
        loss.backward()
        optimizer.step()

    return step


def set_threads(intra, inter):
    """TensorFlow's thread pools, before its first operation (the other backends: not supported)."""
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("--threads sets TensorFlow's thread pools: run it on the TensorFlow backend")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)


def spread(numerators, denominators):
    """A ratio of medians, and the smallest and largest ratio of one round."""
    rounds = [n / d for n, d in zip(numerators, denominators)]
    return statistics.median(numerators) / statistics.median(denominators), min(rounds), max(rounds)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", choices=CELL_KINDS, default=list(CELL_KINDS))
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50, help="time steps per sequence (default: %(default)s)")
    parser.add_argument("--inputs", type=int, default=100)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=5, help="calls before measuring (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=30, help="measured calls per round (default: %(default)s)")
    parser.add_argument(
        "--repeat", type=int, default=3,
        help="rounds over every measurement, interleaved, so that a ratio is one of medians over "
        "rounds and not one noisy run (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--xla", choices=("both", "on", "off"), default="both")
    parser.add_argument(
        "--unroll", action="store_true",
        help="unroll every layer's time loop (Keras' `unroll`): one graph node per step, no loop",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, nargs=2, metavar=("INTRA", "INTER"),
        help="TensorFlow's intra-op and inter-op thread pools (default: TensorFlow's choice)",
    )  # fmt: skip
    parser.add_argument(
        "--peers", action="store_true", help="also PyTorch's nn.LSTM / nn.GRU / nn.RNN at the same shape"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per measurement")
    parser.add_argument("--save", metavar="FILE", help="also write the JSON list to FILE")
    options = parser.parse_args(argv)
    if options.threads:
        set_threads(*options.threads)

    gflops = matmul_gflops()
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[options.xla]
    shape = dict(batch=options.batch, steps=options.steps, inputs=options.inputs, units=options.units)
    calls = {
        (kind, xla): keras_step(kind, xla, **shape, unroll=options.unroll) for kind in options.kinds for xla in modes
    }
    if options.peers:
        for peer in sorted({PEERS[kind] for kind in options.kinds}):
            calls[(f"torch.nn.{peer}", None)] = torch_step(peer, **shape)
    rounds = {key: [] for key in calls}
    for number in range(options.repeat):
        for key, call in calls.items():
            rounds[key].append(time_calls(call, options.repeats, options.warmup if number == 0 else 1)["ms"])
            if not options.json:
                print(f"  round {number + 1}: {key[0]} xla={key[1]}: {rounds[key][-1]:.1f} ms/step", flush=True)

    lstm_key = ("lstm", False) if ("lstm", False) in rounds else ("lstm", True)
    machine = {"backend": keras.backend.backend(), "device": device()}  # once: device() asks the system
    results = []
    for (cell, xla), times in rounds.items():
        ms = statistics.median(times)
        kind = cell if cell in PEERS else PEER_FLOPS[cell.rsplit(".", 1)[-1]]
        result = {
            "cell": cell, "xla": xla, "ms_per_step": ms, "round_ms": times, "tokens_per_s": options.batch * options.steps / (ms / 1000),
            "gflops": cell_flops(kind, **shape) / (ms / 1000) / 1e9, **shape, "matmul_gflops": gflops,
            "unroll": options.unroll, "threads": options.threads, **machine,
        }  # fmt: skip
        result["flop_fraction"] = result["gflops"] / gflops
        if lstm_key in rounds:
            result["x_keras_lstm"] = spread(rounds[lstm_key], times)
        peer = ("torch.nn." + PEERS.get(cell, ""), None)
        if peer in rounds:
            result["x_pytorch"] = spread(rounds[peer], times)
        results.append(result)
    if options.save:
        with open(options.save, "w") as file:
            json.dump(results, file, indent=1)
    if options.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"\nshape: batch {options.batch}, {options.steps} steps, {options.inputs} inputs, {options.units} units"
          f"{', unrolled' if options.unroll else ''}{', threads %d/%d' % tuple(options.threads) if options.threads else ''}; "
          f"{options.repeat} rounds of {options.repeats} calls; matmul {gflops:.1f} GFLOP/s (fp32, 2048³); "
          f"{results[0]['device']}; Keras {keras.__version__}, {keras.backend.backend()} backend\n")  # fmt: skip
    print(
        f"| cell | XLA | ms/step (median of rounds) | rounds ms | tokens/s | × Keras LSTM (XLA "
        f"{'on' if lstm_key[1] else 'off'}) [rounds] | × PyTorch peer [rounds] | GFLOP/s | of matmul |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['cell']} | {'-' if r['xla'] is None else 'on' if r['xla'] else 'off'} | {r['ms_per_step']:.1f} | "
              f"{', '.join(f'{t:.1f}' for t in r['round_ms'])} | {r['tokens_per_s']:,.0f} | "
              f"{ratio_text(r.get('x_keras_lstm'))} | {ratio_text(r.get('x_pytorch'))} | {r['gflops']:.1f} | "
              f"{100 * r['flop_fraction']:.0f} % |")  # fmt: skip
    return 0


def ratio_text(ratio):
    return "" if ratio is None else f"{ratio[0]:.2f} [{ratio[1]:.2f}-{ratio[2]:.2f}]"


if __name__ == "__main__":
    raise SystemExit(main())
