"""Evaluation: classification and sequence-labelling metrics and reports."""

from kfinetune.evaluation.classification import ClassificationReport
from kfinetune.evaluation.classification import classification_report
from kfinetune.evaluation.classification import evaluate_classifier
from kfinetune.evaluation.confusion import plot_confusion_matrix
from kfinetune.evaluation.sequence_labelling import SequenceLabellingReport
from kfinetune.evaluation.sequence_labelling import extract_entities
from kfinetune.evaluation.sequence_labelling import sequence_labelling_report

__all__ = [
    "ClassificationReport",
    "SequenceLabellingReport",
    "classification_report",
    "evaluate_classifier",
    "extract_entities",
    "plot_confusion_matrix",
    "sequence_labelling_report",
]
