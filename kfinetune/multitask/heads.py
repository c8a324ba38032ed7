"""Head specs of a multi-task model: what each task predicts.

`kfinetune.multitask.build` turns each spec into layers on top of the shared
backbone. The specs only describe the heads: the built model is a plain
functional Keras model that does not keep them.
"""

from kfinetune import checks

# How a sentence-level head reads a sentence from the backbone.
POOLINGS = ("pooler", "mean")


class Head:
    """Base class of the head specs.

    Subclasses set `features` (the backbone output the head reads,
    `"pooled_output"` or `"sequence_output"`) and `units`; a sentence-level
    head also sets `pooling`.

    Args:
        dropout: dropout rate applied to the features before the head's
            dense layer. Defaults to `0.1`, as keras-hub's BERT classifier.
    """

    features = None
    pooling = None

    def __init__(self, dropout=0.1):
        checks.in_range("dropout", dropout, 0, 1)
        self.dropout = dropout

    @property
    def units(self):
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Classification(Head):
    """A sentence-level classification head: one logit per class.

    Targets are integer class ids; train with
    `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`.

    Args:
        num_classes: the number of classes, at least 2. Defaults to `2`.
        dropout: see `Head`. Defaults to `0.1`.
        pooling: how the head reads the sentence. `"pooler"`: the
            backbone's `pooled_output` (the pooler over the first token of
            BERT, ELECTRA and ALBERT; the first token's hidden state of
            the families without a pooler, what keras-hub's classifiers of
            those families read: see `kfinetune.encoders.outputs`), or
            `"mean"`: the mean of
            `sequence_output` over the tokens of the padding mask.
            Sentence-embedding checkpoints were trained with mean pooling,
            not with their pooler: on all-MiniLM-L6-v2 (a
            sentence-transformers model) the pooler's output hardly varies
            between sentences (see the multi-task guide). Defaults to
            `"pooler"`.

    Example:

    ```python
    heads = {"sentiment": kfinetune.multitask.Classification(3, dropout=0.2)}
    ```
    """

    def __init__(self, num_classes=2, dropout=0.1, pooling="pooler"):
        checks.at_least("num_classes", num_classes, 2, integer=True)
        checks.one_of("pooling", pooling, POOLINGS)
        super().__init__(dropout=dropout)
        self.num_classes = num_classes
        self.pooling = pooling

    @property
    def features(self):
        return _pooled_features(self.pooling)

    @property
    def units(self):
        return self.num_classes


class TokenClassification(Head):
    """A per-token classification head (tagging): logits for every token.

    Reads the backbone's `sequence_output`; the output has shape
    `(batch, sequence_length, num_labels)`. Targets are integer label ids of
    shape `(sequence_length,)` per example; give the task's dataset per-token
    sample weights (0 at padding and at word pieces that carry no label) so
    that those positions count in neither loss nor metrics.

    Args:
        num_labels: the number of labels, at least 2. Defaults to `2`.
        dropout: see `Head`. Defaults to `0.1`.

    Example:

    ```python
    heads = {"tags": kfinetune.multitask.TokenClassification(9)}
    ```
    """

    features = "sequence_output"

    def __init__(self, num_labels=2, dropout=0.1):
        checks.at_least("num_labels", num_labels, 2, integer=True)
        super().__init__(dropout=dropout)
        self.num_labels = num_labels

    @property
    def units(self):
        return self.num_labels


class Regression(Head):
    """A sentence-level regression head: one real output.

    The output has shape `(batch, 1)`. Targets are floats; train with e.g.
    `"mse"`.

    Args:
        dropout: see `Head`. Defaults to `0.1`.
        pooling: how the head reads the sentence: see `Classification`.
            Defaults to `"pooler"`.

    Example:

    ```python
    heads = {"score": kfinetune.multitask.Regression(pooling="mean")}
    ```
    """

    def __init__(self, dropout=0.1, pooling="pooler"):
        checks.one_of("pooling", pooling, POOLINGS)
        super().__init__(dropout=dropout)
        self.pooling = pooling

    @property
    def features(self):
        return _pooled_features(self.pooling)

    @property
    def units(self):
        return 1


def _pooled_features(pooling):
    return "pooled_output" if pooling == "pooler" else "sequence_output"
