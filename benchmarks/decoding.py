"""Decoding throughput of a translation model: the seq2seq core's searches against a plain loop.

    python -m benchmarks.decoding --model runs:/RUN_ID/model --tracking-uri sqlite:///mlflow.db
    python -m benchmarks.decoding --sentences 200 --loop-sentences 20

Translates the first `--sentences` validation captions of the model's language pair with
`apps.translation`'s generation (the encoder once per batch, then one decoder step per token:
greedy, and beam search of each `--beam-widths`), and the first `--loop-sentences` with a plain
Python loop over the same saved model: one sentence at a time, the whole model run again on the
growing target prefix (`predict_on_batch`), the most probable unit appended, until END. Prints
sentences per second of each, and how many of the loop's translations the greedy search matches.
"""

import argparse
import contextlib
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def plain_loop(serving_model, texts, start_id, end_id, budget_of):
    """Greedy translation of each text by re-running the whole serving model on its prefix."""
    outputs = []
    for text in texts:
        previous = [start_id]
        for _ in range(budget_of(text)):
            logits = serving_model.predict_on_batch(
                {"text": np.array([text], dtype=object), "previous": np.array([previous], dtype="int32")}
            )
            unit = int(np.argmax(logits[0, -1]))
            if unit == end_id:
                break
            previous.append(unit)
        outputs.append(previous[1:])
    return outputs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a translation model: .keras file, MLflow folder or URI")
    parser.add_argument("--tracking-uri", help="the MLflow store of a runs:/ or models:/ URI")
    parser.add_argument("--data-dir", help="folder holding multi30k/ (default: $RNN_SUITE_DATA)")
    parser.add_argument(
        "--sentences", type=int, default=200, help="sentences the searches translate (default: %(default)s)"
    )
    parser.add_argument(
        "--loop-sentences", type=int, default=20, help="sentences the plain loop translates (default: %(default)s)"
    )
    parser.add_argument("--beam-widths", type=int, nargs="+", default=[10], help="beam widths (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per measurement")
    options = parser.parse_args(argv)

    from apps.parts import Parts
    from apps.saved import load_model
    from apps.translation import SOURCE_IDS, SOURCE_UNITS, TRANSLATOR
    from apps.translation_data import Translator
    from benchmarks.common import device, print_results
    from pipelines.parallel import load_parallel
    from pipelines.vocab import Vocabulary

    with contextlib.redirect_stdout(sys.stderr):
        serving_model = load_model(options.model, options.tracking_uri)
        found = Parts(serving_model)
        settings = found.settings.values
        pairs = load_parallel("multi30k", settings["source"], settings["target"], options.data_dir, ("valid",))
        texts = [source for source, _ in pairs.pairs["valid"]]
        target_words = Vocabulary.from_dict(settings["target_units"])
        ids = found.required(SOURCE_IDS)(found.required(SOURCE_UNITS)(np.asarray(texts, dtype=object)))
        id_rows = [[int(i) for i in row if i != 0] for row in np.asarray(ids)]
        length = {text: len(row) for text, row in zip(texts, id_rows)}

    results, greedy_units = [], None
    for width in [1, *options.beam_widths]:
        translator = Translator(found.required(TRANSLATOR), target_words, beam_width=width)
        translator.units(id_rows[:8])  # the first calls trace the step functions: not measured
        start = time.perf_counter()
        units = translator.units(id_rows[: options.sentences])
        seconds = time.perf_counter() - start
        if width == 1:
            greedy_units = units
        results.append({"decoding": "greedy" if width == 1 else f"beam {width}", "sentences": len(units),
                        "seconds": seconds, "sentences_per_s": len(units) / seconds})  # fmt: skip
    end_id, start_id = target_words.end_id, target_words.start_id
    # The same budget as the searches: twice the source's units plus 10.
    plain_loop(serving_model, texts[:1], start_id, end_id, lambda t: 2 * length[t] + 10)  # tracing
    start = time.perf_counter()
    looped = plain_loop(serving_model, texts[: options.loop_sentences], start_id, end_id, lambda t: 2 * length[t] + 10)
    seconds = time.perf_counter() - start
    matches = sum(target_words.decode(row) == greedy for row, greedy in zip(looped, greedy_units))
    results.append({"decoding": "plain loop (greedy, model re-run per unit)", "sentences": len(looped),
                    "seconds": seconds, "sentences_per_s": len(looped) / seconds,
                    "matches_greedy": f"{matches}/{len(looped)}"})  # fmt: skip
    for result in results:
        result.update(model=options.model, device=device())
    print_results(
        results,
        {
            "decoding": "decoding",
            "sentences": "sentences",
            "seconds": "seconds",
            "sentences/s": "sentences_per_s",
            "same as greedy": "matches_greedy",
        },  # fmt: skip
        options.json,
        heading=f"translation decoding, Multi30k validation ({settings['source']}->{settings['target']}), "
        f"model {options.model}; {device()}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
