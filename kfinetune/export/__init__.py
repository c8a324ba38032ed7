"""Export a keras-hub text classifier, a tagger or a question answerer as
a SavedModel that reads raw text.

`model.export` serves the model's own inputs (token ids, padding mask); a
deployed model should take strings. These put the preprocessing (the
tokenizer and packer, word and window alignment, answer spans) into the
SavedModel graph.
"""

from kfinetune.export.question_answerer import export_question_answerer
from kfinetune.export.tagger import export_tagger
from kfinetune.export.text_classifier import export_text_classifier
from kfinetune.export.text_classifier import load_text_classifier

__all__ = [
    "export_question_answerer",
    "export_tagger",
    "export_text_classifier",
    "load_text_classifier",
]
