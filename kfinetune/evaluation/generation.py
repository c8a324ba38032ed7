"""Generating from a keras-hub language model and scoring what it wrote."""

import dataclasses

import keras_hub

from kfinetune import checks
from kfinetune.evaluation import bleu as bleu_lib
from kfinetune.evaluation import chrf as chrf_lib
from kfinetune.evaluation import rouge as rouge_lib
from kfinetune.evaluation import text_pairs


@dataclasses.dataclass(frozen=True)
class GenerationReport:
    """Corpus BLEU, chrF and ROUGE-L of generated texts.

    Build it with `evaluate_generator` or `generation_report`. `str()`
    gives a printable summary.

    Attributes:
        bleu: a `BLEUScore` (its `.score` is BLEU, 0-100, as sacrebleu).
        chrf: chrF2, 0-100, as sacrebleu.
        rouge_l: the mean ROUGE-L F-measure, 0-1, as rouge-score.
        hypotheses: the scored texts, a tuple of strings.
    """

    bleu: bleu_lib.BLEUScore
    chrf: float
    rouge_l: float
    hypotheses: tuple

    def as_dict(self):
        """The scores as a JSON-ready dict (without the hypotheses)."""
        return {
            "bleu": self.bleu.score,
            "chrf": self.chrf,
            "rouge_l": self.rouge_l,
        }

    def __str__(self):
        return (
            f"{self.bleu}\nchrF2 = {self.chrf:.2f}\n"
            f"ROUGE-L = {self.rouge_l:.4f}\nexamples = {len(self.hypotheses)}"
        )


def generation_report(hypotheses, references):
    """Scores texts against references with BLEU, chrF and ROUGE-L.

    Args:
        hypotheses: a list of strings.
        references: one entry per hypothesis: a reference string, or a
            list of them (see `corpus_bleu`).

    Returns:
        A `GenerationReport`.

    Raises:
        ValueError: an empty corpus, different numbers of hypotheses and
            references, or an element that is not a string.

    Example:

    >>> report = kfinetune.evaluation.generation_report(
    ...     ["the cat sat on the mat"], ["the cat sat on a mat"])
    >>> round(report.bleu.score, 2), round(report.chrf, 2), report.rouge_l
    (53.73, 72.08, 0.8333333333333334)
    """
    hypotheses, references = text_pairs.check_corpus(hypotheses, references)
    return GenerationReport(
        bleu=bleu_lib.corpus_bleu(hypotheses, references),
        chrf=chrf_lib.corpus_chrf(hypotheses, references),
        rouge_l=rouge_lib.corpus_rouge_l(hypotheses, references),
        hypotheses=tuple(hypotheses),
    )


def evaluate_generator(
    model,
    prompts,
    references,
    max_length=None,
    batch_size=8,
    stop_token_ids="auto",
):
    """Generates from a keras-hub language model and scores the outputs.

    Calls `model.generate` on the prompts, `batch_size` at a time, and
    scores the generated texts with `generation_report`. A `CausalLM`'s
    outputs are scored without their prompt (`strip_prompt=True`); a
    `Seq2SeqLM` generates the decoder text only. How tokens are chosen is
    set by `model.compile(sampler=...)`: `"greedy"` makes the scores
    repeatable (keras-hub's default, `"top_k"`, samples at random).

    Args:
        model: a keras-hub `CausalLM` or `Seq2SeqLM` with a preprocessor.
        prompts: a list of prompt strings (for a `Seq2SeqLM`, the encoder
            texts).
        references: one entry per prompt: a reference string, or a list of
            them.
        max_length: the longest generated sequence, in tokens, prompt
            included for a `CausalLM`. Defaults to `None`: the
            preprocessor's `sequence_length`.
        batch_size: prompts generated at once. Defaults to `8`.
        stop_token_ids: passed to `model.generate`: `"auto"` stops at the
            tokenizer's end token, `None` generates `max_length` tokens, a
            tuple stops at any of its token ids. Defaults to `"auto"`.

    Returns:
        A `GenerationReport`; its `hypotheses` are the generated texts.

    Raises:
        ValueError: `model` is not a keras-hub `CausalLM` or `Seq2SeqLM`
            or has no preprocessor; no prompts, different numbers of
            prompts and references, or an element that is not a string.

    Example:

    ```python
    causal_lm.compile(sampler="greedy")
    report = kfinetune.evaluation.evaluate_generator(
        causal_lm, prompts, references, max_length=128)
    print(report)
    ```
    """
    # A model returned by `kfinetune.peft.apply` generates with its base
    # (the adapters live inside it).
    model = getattr(model, "base", model)
    if not isinstance(model, keras_hub.models.CausalLM):
        raise ValueError(
            "`model` must be a keras-hub `CausalLM` or `Seq2SeqLM`. "
            f"Received: model={type(model).__name__}"
        )
    if model.preprocessor is None:
        raise ValueError(
            "`model` needs a preprocessor to generate from text prompts "
            "(build it with `from_preset` or pass `preprocessor=`). "
            "Received: model.preprocessor=None"
        )
    checks.positive_integer("batch_size", batch_size)
    if max_length is not None:
        checks.positive_integer("max_length", max_length)
    prompts, references = text_pairs.check_corpus(
        prompts, references, hypotheses_name="prompts"
    )
    # `strip_prompt` reads a decoder-only model's `padding_mask`; a
    # Seq2SeqLM's outputs hold no prompt to strip.
    is_causal = not isinstance(model, keras_hub.models.Seq2SeqLM)
    hypotheses = []
    # Lists of strings, not a `tf.data.Dataset`: keras-hub's Python
    # tokenizers do not take the byte strings a dataset yields.
    for start in range(0, len(prompts), batch_size):
        hypotheses += model.generate(
            prompts[start : start + batch_size],
            max_length=max_length,
            stop_token_ids=stop_token_ids,
            strip_prompt=is_causal,
        )
    return generation_report(hypotheses, references)
