"""The sequence auto-encoder both auto-encoder apps build: a sequence in, one vector (the code) out
of the encoder, and a decoder that rebuilds the sequence from the code alone.

    encoder outputs -> FinalOutputs -> Dense (tanh) = code -> Bridge -> the decoder's initial states
    decoder steps [+ the code at every step] -> AttentionDecoder(attention=None) -> the app's output layer

No attention: the decoder sees the sequence only through the code, the lecture's fixed vector,
so whatever it rebuilds the code held. The text app's decoder reads the previous words (teacher
forcing) and the code; the speech app's reads the code alone at every frame (given the previous
frames, a decoder could rebuild speech while ignoring the code).
"""

import argparse
from pathlib import Path

import keras
import numpy as np
from keras import ops

from apps import cli
from apps.app import UserError
from layers import CELL_KINDS, AppendToSteps
from layers.generation import greedy_search
from layers.seq2seq import AttentionDecoder, Bridge, FinalOutputs

FINAL, CODE, BRIDGE, WITH_CODE, DECODER = "final_outputs", "code", "bridge", "with_code", "decoder"


def add_arguments(parser, code_size=256, every_step=True):
    parser.add_argument(
        "--code-size", type=cli.positive_int, default=code_size, help="the code's size (default: %(default)s)"
    )
    parser.add_argument(
        "--decoder-cell", choices=CELL_KINDS, default=None, help="the decoder's cell kind (default: --cell)"
    )
    parser.add_argument(
        "--decoder-units", type=cli.positive_int, default=None, help="the decoder's size (default: twice --units)"
    )
    parser.add_argument(
        "--code-every-step",
        action=argparse.BooleanOptionalAction,
        default=every_step,
        help="give the decoder the code at every step, not only as its initial state (Cho et al. 2014) "
        "(default: %(default)s)",
    )


def decode(memory, mask, steps, args):
    """The decoder's output sequence for `steps` (batch, T, features), rebuilt from the code of the
    encoder outputs `memory` (batch, S, D) with mask (batch, S)."""
    summary = FinalOutputs(args.bidirectional, name=FINAL)(memory, mask)
    code = keras.layers.Dense(args.code_size, activation="tanh", name=CODE)(summary)
    decoder = AttentionDecoder(
        args.decoder_cell or args.cell,
        args.decoder_units or 2 * args.units,
        attention=None,
        input_feeding=False,
        dropout=args.dropout,
        seed=args.seed,
        name=DECODER,
    )
    states = Bridge(decoder.state_sizes, name=BRIDGE)(code)
    if args.code_every_step:
        steps = AppendToSteps(name=WITH_CODE)([steps, code])
    return decoder(steps, memory, states, memory_mask=mask)


def encoder_model(model, source):
    """The trained encoder alone: the model's input `source` -> the code."""
    return keras.Model(model.input[source], model.get_layer(CODE).output, name="encoder")


def codes(encoder, rows, pad, batch_size=256):
    """The codes (n, code size) of `rows` (id lists or feature arrays), in their order. Rows are
    sorted by length into batches, so padding stays short, and `pad(rows)` pads a batch; each
    batch runs through the encoder's compiled predict function (a query's code costs
    milliseconds, not an eager call's overhead)."""
    order = np.argsort([len(r) for r in rows], kind="stable")
    parts = [
        np.asarray(encoder.predict_on_batch(pad([rows[i] for i in order[start : start + batch_size]])))
        for start in range(0, len(order), batch_size)
    ]
    if not parts:
        return np.zeros((0, encoder.output.shape[-1]), "float32")
    vectors = np.zeros_like(parts[0], shape=(len(rows), parts[0].shape[-1]))
    vectors[order] = np.concatenate(parts)
    return vectors


class Reconstructor:
    """Greedy decoding from the code, one token at a time, with the trained layers of a model whose
    decoder reads the previous token's embedding (`embedding`) and whose output layer is `logits`."""

    def __init__(self, model, source, embedding, logits):
        self.encoder = encoder_model(model, source)
        self.bridge = model.get_layer(BRIDGE)
        self.decoder = model.get_layer(DECODER)
        self.embedding = model.get_layer(embedding)
        self.logits = model.get_layer(logits)
        self.every_step = any(layer.name == WITH_CODE for layer in model.layers)

    def reconstruct(self, ids, start_id, end_id, max_length):
        """The greedy reconstruction (a list of ids, END excluded) of each row of padded ids."""
        code = self.encoder(ops.convert_to_tensor(ids, dtype="int32"), training=False)
        states = self.bridge(code)
        state = {f"state_{i}": ops.convert_to_numpy(s) for i, s in enumerate(states)}
        feed = self.decoder.initial_feed(len(ids))

        def step(tokens, state):
            x = self.embedding(ops.convert_to_tensor(tokens, dtype="int32"))
            if self.every_step:
                x = ops.concatenate([x, code], axis=-1)
            previous = [state[f"state_{i}"] for i in range(len(states))]
            output, _, new_states, _ = self.decoder.step(x, previous, feed, None, None)
            log_probs = ops.log_softmax(self.logits(output), axis=-1)
            new_state = {f"state_{i}": ops.convert_to_numpy(s) for i, s in enumerate(new_states)}
            return ops.convert_to_numpy(log_probs), new_state

        found = greedy_search(step, state, len(ids), start_id, end_id, max_length)
        return [[t for t in h.tokens if t != end_id] for h in found]


def codes_table(texts, vectors):
    """One line an item (a sentence, a file name): its name, then its code's values, tab-separated (float32 exactly)."""
    return "".join(
        text.replace("\t", " ") + "\t" + "\t".join(f"{v:.9g}" for v in row) + "\n" for text, row in zip(texts, vectors)
    )


def add_output_argument(parser):
    parser.add_argument("--output", required=True, help="where the codes go: OUT.npy (NumPy) or OUT.csv")


def checked_output(text):
    """--output's path, refused unless it names a .npy or .csv file (before any encoding)."""
    output = Path(text)
    if output.suffix not in (".npy", ".csv"):
        raise UserError(f"--output {text}: name a .npy or .csv file")
    return output


def write_codes(vectors, output):
    """The codes as NumPy's .npy or as CSV (a row a code, float32 exactly), by `output`'s suffix."""
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix == ".npy":
        np.save(output, vectors)
    else:
        np.savetxt(output, vectors, delimiter=",", fmt="%.9g")
    print(f"{len(vectors)} codes of size {vectors.shape[1]} written to {output}")


def cosine_similarities(queries, collection):
    """(queries, collection) cosine similarities of two sets of row vectors."""
    a = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    b = collection / np.maximum(np.linalg.norm(collection, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def map_figure(points, groups, title):
    """A 2-D PCA map of vectors: one colour per group of `groups` ({name: row labels}, one panel each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    xy = PCA(n_components=2, random_state=0).fit_transform(points) if len(points) > 2 else np.zeros((len(points), 2))
    figure, axes = plt.subplots(1, len(groups), figsize=(6.5 * len(groups), 5.5), squeeze=False)
    for axis, (name, labels) in zip(axes[0], groups.items()):
        labels = np.asarray(labels)
        for value in sorted(set(labels)):
            chosen = labels == value
            axis.scatter(xy[chosen, 0], xy[chosen, 1], s=6, alpha=0.6, label=str(value))
        axis.legend(markerscale=2, fontsize=7, title=name)
        axis.set(xlabel="PC 1", ylabel="PC 2", title=f"{title}, coloured by {name}")
    figure.tight_layout()
    return figure
