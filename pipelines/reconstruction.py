"""How well an auto-encoder rebuilds its input sentences: exact rate, token accuracy, BLEU, by length."""

import numpy as np

LENGTH_BINS = ((1, 5), (6, 10), (11, 15), (16, 20), (21, 25), (26, 30), (31, 10**9))


def reconstruction_metrics(references, hypotheses):
    """For token lists: `exact` (share rebuilt whole), `token_accuracy` (reference tokens matched
    at their own position), `bleu` (sacrebleu's corpus BLEU on the tokens as given, tokenize="none";
    a fraction like the rest)."""
    import sacrebleu

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        return {"exact": 0.0, "token_accuracy": 0.0, "bleu": 0.0}
    matched = sum(sum(a == b for a, b in zip(r, h)) for r, h in zip(references, hypotheses))
    total = sum(len(r) for r in references)
    bleu = sacrebleu.corpus_bleu([" ".join(h) for h in hypotheses], [[" ".join(r) for r in references]],
                                 tokenize="none")  # fmt: skip
    return {
        "exact": float(np.mean([list(r) == list(h) for r, h in zip(references, hypotheses)])),
        "token_accuracy": matched / max(total, 1),
        "bleu": bleu.score / 100.0,
    }


def by_length(references, hypotheses, bins=LENGTH_BINS):
    """[(label, sentences, metrics)] for the references' lengths in each bin that has any."""
    rows = []
    for low, high in bins:
        chosen = [i for i, r in enumerate(references) if low <= len(r) <= high]
        if chosen:
            label = f"{low}-{high}" if high < 10**9 else f"{low}+"
            metrics = reconstruction_metrics([references[i] for i in chosen], [hypotheses[i] for i in chosen])
            rows.append((label, len(chosen), metrics))
    return rows


def length_figure(rows):
    """Exact rate, token accuracy and BLEU against sentence length: where the code runs out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    labels = [f"{label}\n({count})" for label, count, _ in rows]
    for key, name in (("exact", "exact reconstruction"), ("token_accuracy", "token accuracy"), ("bleu", "BLEU")):
        axis.plot(labels, [100 * m[key] for _, _, m in rows], marker="o", label=name)
    axis.set(xlabel="sentence length in tokens (sentences)", ylabel="%", ylim=(0, 100))
    axis.set_title("reconstruction of held-out sentences by length")
    axis.legend()
    figure.tight_layout()
    return figure
