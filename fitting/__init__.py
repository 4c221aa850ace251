"""Fitting code beside the layers: what fills a layer's tables from training data, outside Keras.

from fitting.ngrams import fit_nbsvm, fit_naive_bayes, fit_blend
"""
