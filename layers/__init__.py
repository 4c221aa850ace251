"""Recurrent cells of the lecture, next to Keras' own, behind one factory.

    from layers import ElmanCell, JordanCell, PeepholeLSTMCell
    from layers import RecurrentStack, CELL_KINDS

Importing this package registers every custom object with Keras, which a
`.keras` file or a logged MLflow model that uses them needs before loading.
"""

from layers.base import CellLayer, RecurrentCell
from layers.characters import CharacterFeatures
from layers.context import AppendToSteps, ContextWindow, SwapNeighbours, WordDropout, WordStatistics
from layers.crf import ConditionalRandomField, SequenceLikelihoodLoss
from layers.ctc import CTCLoss
from layers.decoding import ViterbiDecoder, bio_constraints
from layers.elman import Elman, ElmanCell
from layers.ensemble import AveragedProbabilities
from layers.factory import (
    BUILTIN_KINDS,
    CELL_KINDS,
    CUSTOM_KINDS,
    RecurrentStack,
    check_kind,
    recurrent_layer,
)
from layers.jordan import Jordan, JordanCell
from layers.metadata import Metadata
from layers.ngram_scores import NaiveBayesScores, NgramScores, ScoreWeight
from layers.peephole_lstm import PeepholeLSTM, PeepholeLSTMCell
from layers.pooling import POOLING_MODES, AttentionPooling
from layers.seq2seq import Attention, AttentionDecoder, Bridge, FinalOutputs, NextSourceStep

__all__ = [
    "AppendToSteps",
    "Attention",
    "AttentionDecoder",
    "AttentionPooling",
    "AveragedProbabilities",
    "POOLING_MODES",
    "BUILTIN_KINDS",
    "Bridge",
    "CELL_KINDS",
    "CUSTOM_KINDS",
    "CTCLoss",
    "ConditionalRandomField",
    "CellLayer",
    "CharacterFeatures",
    "ContextWindow",
    "Elman",
    "FinalOutputs",
    "ElmanCell",
    "Jordan",
    "JordanCell",
    "Metadata",
    "NaiveBayesScores",
    "NextSourceStep",
    "NgramScores",
    "PeepholeLSTM",
    "PeepholeLSTMCell",
    "RecurrentCell",
    "RecurrentStack",
    "ScoreWeight",
    "SwapNeighbours",
    "SequenceLikelihoodLoss",
    "ViterbiDecoder",
    "WordDropout",
    "WordStatistics",
    "bio_constraints",
    "check_kind",
    "recurrent_layer",
]
