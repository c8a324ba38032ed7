"""Perplexity and token accuracy of a causal or sequence-to-sequence LM."""

import dataclasses
import math

import keras
import tensorflow as tf

from kfinetune import checks


@dataclasses.dataclass(frozen=True)
class LanguageModelReport:
    """How well a language model predicts the next token of a dataset.

    Build it with `evaluate_language_model`. `str()` gives a printable
    summary.

    Attributes:
        perplexity: `exp(cross_entropy)`.
        cross_entropy: the mean cross-entropy of the target tokens, in nats,
            weighted by their sample weights.
        token_accuracy: the weighted fraction of target tokens that are the
            model's most likely token.
        tokens: the sum of the sample weights: the number of target tokens
            scored when the weights are 0 and 1.
    """

    perplexity: float
    cross_entropy: float
    token_accuracy: float
    tokens: float

    def as_dict(self):
        """The report as a JSON-ready dict."""
        return dataclasses.asdict(self)

    def __str__(self):
        return (
            f"perplexity      {self.perplexity:.4f}\n"
            f"cross-entropy   {self.cross_entropy:.4f}\n"
            f"token accuracy  {self.token_accuracy:.4f}\n"
            f"tokens          {self.tokens:g}"
        )


def _batch_sums(model, x, y, sample_weight):
    """Weighted sums of one batch: cross-entropy, weights, correct tokens."""
    # Mixed-precision models give float16 / bfloat16 logits.
    logits = keras.ops.cast(model(x, training=False), "float32")
    y = keras.ops.cast(y, "int32")
    cross_entropy = keras.ops.sparse_categorical_crossentropy(
        y, logits, from_logits=True
    )
    if sample_weight is None:
        sample_weight = keras.ops.ones_like(cross_entropy)
    sample_weight = keras.ops.cast(sample_weight, "float32")
    correct = keras.ops.cast(
        keras.ops.equal(keras.ops.argmax(logits, axis=-1), y), "float32"
    )
    return (
        keras.ops.sum(cross_entropy * sample_weight),
        keras.ops.sum(sample_weight),
        keras.ops.sum(correct * sample_weight),
    )


def _strings(array):
    """A NumPy array of UTF-8 byte strings as a list of `str`."""
    return [text.decode("utf-8") for text in array.tolist()]


def _is_labelled(spec):
    return isinstance(spec, tuple) and len(spec) in (2, 3)


def evaluate_language_model(model, dataset, batch_size=8):
    """Computes the perplexity and token accuracy of a language model.

    For keras-hub `CausalLM` and `Seq2SeqLM` models (and any model whose
    output is next-token logits, shape `(batch, length, vocabulary)`).
    Perplexity is `exp` of the mean token cross-entropy, each token
    weighted by its sample weight: keras-hub's preprocessors give padding
    weight 0, and instruction data may give prompt tokens weight 0 too, so
    that only response tokens count. This is what
    `keras_hub.metrics.Perplexity(from_logits=True)` computes with those
    sample weights (a metric to compile for training); this function adds
    token accuracy, runs over a whole dataset without changing how the
    model is compiled, and adds up in float64.

    Args:
        model: a keras-hub `CausalLM` or `Seq2SeqLM`, or any model mapping
            the dataset's inputs to logits.
        dataset: a `tf.data.Dataset` of `(x, y, sample_weight)` or
            `(x, y)` (every token weighs 1), as keras-hub's `CausalLM` and
            `Seq2SeqLM` preprocessors make them: `y` holds the target token
            ids, `(batch, length)`. A dataset of raw text (strings, or the
            dict of strings a `Seq2SeqLM` preprocessor takes) is
            preprocessed batch by batch by `model.preprocessor`, when the
            model has one.
        batch_size: used when `dataset` is unbatched. Defaults to `8`.

    Returns:
        A `LanguageModelReport`.

    Raises:
        ValueError: `dataset` does not yield `(x, y)` or `(x, y,
            sample_weight)` (and the model has no preprocessor to make
            them), or no token has a positive weight.

    Example:

    ```python
    causal_lm = keras_hub.models.GemmaCausalLM.from_preset(...)
    texts = tf.data.Dataset.from_tensor_slices(test_texts).batch(8)
    report = kfinetune.evaluation.evaluate_language_model(causal_lm, texts)
    print(report.perplexity, report.token_accuracy)
    ```
    """
    checks.positive_integer("batch_size", batch_size)
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            "`dataset` must be a `tf.data.Dataset` of `(x, y, "
            f"sample_weight)` batches. Received: dataset={dataset!r}"
        )
    spec = dataset.element_spec
    preprocessor = getattr(model, "preprocessor", None)
    if _is_labelled(spec):
        if len(spec[1].shape) == 1:
            dataset = dataset.batch(batch_size)
        batches = iter(dataset)
    elif preprocessor is not None:
        if all(len(s.shape) == 0 for s in keras.tree.flatten(spec)):
            dataset = dataset.batch(batch_size)
        # In Python, batch by batch: keras-hub's tokenizers are much faster
        # eagerly than traced into `dataset.map` (seconds to trace).
        batches = (
            preprocessor(keras.tree.map_structure(_strings, batch))
            for batch in dataset.as_numpy_iterator()
        )
    else:
        raise ValueError(
            "`dataset` must yield `(x, y)` or `(x, y, sample_weight)`, as "
            "keras-hub's CausalLM and Seq2SeqLM preprocessors make them "
            "(or raw text, for a model with a preprocessor). Received: "
            f"element_spec={spec}"
        )

    # One traced graph serves every batch; `reduce_retracing` keeps a
    # shorter last batch (or another sequence length) from adding more.
    @tf.function(reduce_retracing=True)
    def batch_sums(x, y, sample_weight):
        return _batch_sums(model, x, y, sample_weight)

    cross_entropy, tokens, correct = 0.0, 0.0, 0.0
    for batch in batches:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
        sums = batch_sums(x, y, sample_weight)
        cross_entropy += float(sums[0])
        tokens += float(sums[1])
        correct += float(sums[2])
    if not tokens > 0:
        raise ValueError(
            "No target token has a positive sample weight (is the dataset "
            f"empty, or every weight 0?). Received: tokens={tokens}"
        )
    mean = cross_entropy / tokens
    return LanguageModelReport(
        perplexity=math.exp(mean),
        cross_entropy=mean,
        token_accuracy=correct / tokens,
        tokens=tokens,
    )
