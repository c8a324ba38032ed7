"""Evaluation: classification (single- and multi-label), sequence-labelling
and generation metrics and reports."""

from kfinetune.evaluation.bleu import BLEUScore
from kfinetune.evaluation.bleu import corpus_bleu
from kfinetune.evaluation.bleu import sentence_bleu
from kfinetune.evaluation.bleu import tokenize_13a
from kfinetune.evaluation.chrf import corpus_chrf
from kfinetune.evaluation.chrf import sentence_chrf
from kfinetune.evaluation.classification import ClassificationReport
from kfinetune.evaluation.classification import MultiLabelReport
from kfinetune.evaluation.classification import classification_report
from kfinetune.evaluation.classification import evaluate_classifier
from kfinetune.evaluation.classification import multi_label_report
from kfinetune.evaluation.confusion import plot_confusion_matrix
from kfinetune.evaluation.generation import GenerationReport
from kfinetune.evaluation.generation import evaluate_generator
from kfinetune.evaluation.generation import generation_report
from kfinetune.evaluation.language_model import LanguageModelReport
from kfinetune.evaluation.language_model import evaluate_language_model
from kfinetune.evaluation.rouge import corpus_rouge_l
from kfinetune.evaluation.rouge import sentence_rouge_l
from kfinetune.evaluation.rouge import tokenize_rouge
from kfinetune.evaluation.sequence_labelling import SequenceLabellingReport
from kfinetune.evaluation.sequence_labelling import extract_entities
from kfinetune.evaluation.sequence_labelling import sequence_labelling_report

__all__ = [
    "BLEUScore",
    "ClassificationReport",
    "GenerationReport",
    "LanguageModelReport",
    "MultiLabelReport",
    "SequenceLabellingReport",
    "classification_report",
    "corpus_bleu",
    "corpus_chrf",
    "corpus_rouge_l",
    "evaluate_classifier",
    "evaluate_generator",
    "evaluate_language_model",
    "extract_entities",
    "generation_report",
    "multi_label_report",
    "plot_confusion_matrix",
    "sentence_bleu",
    "sentence_chrf",
    "sentence_rouge_l",
    "sequence_labelling_report",
    "tokenize_13a",
    "tokenize_rouge",
]
