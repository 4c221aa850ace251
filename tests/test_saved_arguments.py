"""Reading a run's saved arguments: flags renamed or added since the run are migrated in one step."""

from apps.keywords import APP as keywords
from apps.sentiment import APP as sentiment
from apps.slot_filling import APP as slot_filling
from apps.training import saved_arguments


def test_a_renamed_flag_is_read_under_its_new_name_and_missing_flags_mean_what_they_meant():
    # A sentiment run saved before --fusion, --ngram-classifier, --char-ngrams, --ema and --reduce-lr,
    # with --naive-bayes (now --ngrams).
    old = {"dataset": "mr", "cell": "lstm", "naive_bayes": 2, "learning_rate": 0.001}
    args = saved_arguments(sentiment, old, {"verbose": 0})
    assert args.ngrams == 2 and not hasattr(args, "naive_bayes")
    assert (args.fusion, args.ngram_classifier, args.char_ngrams) == ("joint", "mnb", 0)
    assert (args.ema, args.reduce_lr, args.members, args.cv, args.fold) == (0.0, 0, 1, None, None)
    assert args.verbose == 0 and args.learning_rate == 0.001


def test_saved_values_win_over_the_legacy_ones_and_overrides_over_both():
    args = saved_arguments(keywords, {"ranking": "fitted", "ema": 0.99}, {"ema": 0.5})
    assert args.ranking == "fitted" and args.ema == 0.5
    assert (args.keys, args.word_statistics, args.word_dropout) == ("all", False, 0.0)
    args = saved_arguments(slot_filling, {"slot_crf": True})
    assert args.slot_crf is True and args.slot_decoding == "argmax" and args.char_features == 0
