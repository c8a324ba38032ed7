"""`CRF`: a linear-chain conditional random field, and `CRFLoss`."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kfinetune import checks


def _float_mask(mask, emissions):
    if mask is None:
        return ops.ones(ops.shape(emissions)[:2], "float32")
    return ops.cast(mask, "float32")


def _steps(emissions, mask):
    """The scan input of every step after the first: time-major emissions
    with the mask as an extra last column.

    One tensor, not a tuple: Keras's TensorFlow `scan` fails on several
    inputs whose time dimension is unknown (as in `model.export`).
    """
    steps = ops.concatenate([emissions, mask[:, :, None]], axis=-1)
    return ops.moveaxis(steps[:, 1:], 1, 0)


def _scan(step, carry, steps, reverse=False):
    """`keras.ops.scan`, as a loop XLA can differentiate when the time
    dimension is static.

    Keras's TensorFlow `scan` is a while loop without a maximum iteration
    count, which XLA cannot differentiate. `tf.scan` bounds its loop by
    the number of steps, so training under `jit_compile=True` runs one
    loop instead of a copy of the step per token (unrolled in Python, the
    first XLA compile of a MiniLM tagger at length 128 took 113 s against
    25 s for a softmax head). A dynamic time dimension (as in
    `model.export`) uses Keras's loop.
    """
    time = steps.shape[0]
    if time is None:
        return ops.scan(step, carry, steps, reverse=reverse)
    if time == 0:
        return carry, None
    # The shapes and dtypes of a step's output, for the loop's first state.
    _, first = step(carry, steps[-1 if reverse else 0])
    if first is None:
        carries = tf.scan(
            lambda state, x: step(state, x)[0],
            steps,
            initializer=carry,
            reverse=reverse,
        )
        last = keras.tree.map_structure(
            lambda c: c[0] if reverse else c[-1], carries
        )
        return last, None

    def both(state, x):
        return step(state[0], x)

    empty = keras.tree.map_structure(ops.zeros_like, first)
    carries, outputs = tf.scan(
        both, steps, initializer=(carry, empty), reverse=reverse
    )
    last = keras.tree.map_structure(
        lambda c: c[0] if reverse else c[-1], carries
    )
    return last, outputs


def _split(step):
    return step[:, :-1], step[:, -1:]


def _left_align(chain):
    """The positions of a `(batch, time)` 0/1 `chain` mask moved to the
    front, in order.

    Returns:
        `order`, int32 `(batch, time)`: the chain's positions first, then
        the others; and `mask`, float32 `(batch, time)`: 1 for the first
        `sum(chain)` entries of each row.
    """
    time = ops.shape(chain)[1]
    inside = ops.cast(chain > 0, "int32")
    count = ops.sum(inside, axis=1, keepdims=True)
    # Where each position goes: the chain's in order, then the others.
    # (No sort: under XLA on CPU, an argsort here made a MiniLM tagger's
    # training step about 9 times slower.)
    destination = ops.where(
        inside > 0,
        ops.cumsum(inside, axis=1) - 1,
        count + ops.cumsum(1 - inside, axis=1) - 1,
    )
    # The inverse permutation, exactly, as a product with a one-hot matrix.
    positions = ops.arange(time, dtype="float32")
    order = ops.einsum(
        "bpk,p->bk", ops.one_hot(destination, time, dtype="float32"), positions
    )
    arange = ops.arange(time, dtype="int32")[None]
    return ops.cast(order, "int32"), ops.cast(arange < count, "float32")


def _to_positions(chain_tags, chain, mask):
    """Chain tags back at the positions: each position gets the tag of the
    last chain position at or before it (a word's continuation pieces get
    its tag); positions before the first chain position, and padding, get
    0."""
    rank = ops.cumsum(ops.cast(chain > 0, "int32"), axis=1) - 1
    tags = ops.take_along_axis(chain_tags, ops.maximum(rank, 0), axis=1)
    inside = ops.logical_and(rank >= 0, mask > 0)
    return ops.where(inside, tags, ops.zeros_like(tags))


def _chain(emissions, mask):
    """`(emissions, order, chain, positions)`: the emissions of the
    unmasked positions moved to the front, in order, with their order and
    left-aligned mask, and the float mask itself; `order` and `positions`
    are `None` without a mask."""
    emissions = ops.cast(emissions, "float32")
    if mask is None:
        return emissions, None, None, None
    positions = ops.cast(mask, "float32")
    order, chain = _left_align(positions)
    emissions = ops.take_along_axis(emissions, order[:, :, None], axis=1)
    return emissions, order, chain, positions


# The score added to a forbidden transition, start or end: low enough
# that no allowed path loses to a forbidden one, small enough for float32
# sums over a few hundred tokens.
FORBIDDEN = -1e4


def _penalties(constraints, num_labels):
    """`(transitions, start, end)` float32 arrays: 0 where `constraints`
    allows, `FORBIDDEN` where it does not."""
    transitions = np.asarray(constraints["transitions"], bool)
    start = np.asarray(constraints["start"], bool)
    end = np.asarray(constraints["end"], bool)
    shapes = {
        "transitions": (transitions.shape, (num_labels, num_labels)),
        "start": (start.shape, (num_labels,)),
        "end": (end.shape, (num_labels,)),
    }
    for key, (shape, expected) in shapes.items():
        if shape != expected:
            raise ValueError(
                f"`constraints[{key!r}]` must have shape {expected} for "
                f"num_labels={num_labels}. Received: shape {shape}"
            )
    if not start.any() or not end.any():
        raise ValueError(
            "`constraints` must allow at least one start and one end tag. "
            f"Received: start={start.tolist()}, end={end.tolist()}"
        )
    return tuple(
        np.where(allowed, 0.0, FORBIDDEN).astype("float32")
        for allowed in (transitions, start, end)
    )


def _log_partition(emissions, mask, transitions, start, end):
    """The log-partition `log Z` of each sequence (forward algorithm).

    Args:
        emissions: per-token potentials, `(batch, time, num_labels)`.
        mask: `(batch, time)`, 1 for tokens and 0 for padding at the end,
            or `None` for no padding.
        transitions: `(num_labels, num_labels)`, `[i, j]` scores tag `i`
            followed by tag `j`.
        start: `(num_labels,)`, the score of starting with each tag.
        end: `(num_labels,)`, the score of ending with each tag.

    Returns:
        `(batch,)` float32.
    """
    emissions = ops.cast(emissions, "float32")
    mask = _float_mask(mask, emissions)

    def step(alpha, inputs):
        emission, m = _split(inputs)
        scores = alpha[:, :, None] + transitions[None] + emission[:, None, :]
        new = ops.logsumexp(scores, axis=1)
        return new * m + alpha * (1.0 - m), None

    alpha = start[None] + emissions[:, 0]
    alpha, _ = _scan(step, alpha, _steps(emissions, mask))
    return ops.logsumexp(alpha + end[None], axis=1)


def _sequence_score(emissions, tags, mask, transitions, start, end):
    """The unnormalised score of the tag path `tags` of each sequence.

    Args:
        emissions: see `_log_partition`.
        tags: `(batch, time)` integer tags; values at padding are ignored.
        mask: see `_log_partition`.
        transitions: see `_log_partition`.
        start: see `_log_partition`.
        end: see `_log_partition`.

    Returns:
        `(batch,)` float32.
    """
    emissions = ops.cast(emissions, "float32")
    mask = _float_mask(mask, emissions)
    num_labels = ops.shape(emissions)[-1]
    # Padding tags may be anything (e.g. -1): clip them into range; the
    # mask zeroes their contribution.
    tags = ops.clip(ops.cast(tags, "int32"), 0, num_labels - 1)
    one_hot = ops.one_hot(tags, num_labels, dtype="float32")
    unary = ops.sum(ops.sum(emissions * one_hot, axis=-1) * mask, axis=1)
    pairs = ops.einsum(
        "bti,ij,btj->bt", one_hot[:, :-1], transitions, one_hot[:, 1:]
    )
    binary = ops.sum(pairs * mask[:, 1:], axis=1)
    last = ops.cast(ops.sum(mask, axis=1), "int32") - 1
    last_tags = ops.take_along_axis(tags, ops.maximum(last, 0)[:, None], 1)
    last_one_hot = ops.one_hot(last_tags[:, 0], num_labels, dtype="float32")
    return (
        unary
        + binary
        + ops.sum(one_hot[:, 0] * start[None], axis=1)
        + ops.sum(last_one_hot * end[None], axis=1)
    )


def _decode(emissions, mask, transitions, start, end):
    """The highest-scoring tag path of each sequence (Viterbi).

    Args:
        emissions: see `_log_partition`.
        mask: see `_log_partition`.
        transitions: see `_log_partition`.
        start: see `_log_partition`.
        end: see `_log_partition`.

    Returns:
        `(batch, time)` int32 tags, 0 at padding.
    """
    emissions = ops.cast(emissions, "float32")
    mask = _float_mask(mask, emissions)
    num_labels = ops.shape(emissions)[-1]
    identity = ops.arange(num_labels, dtype="int32")[None]

    # Keras's TensorFlow `scan` needs each step's output to have the
    # structure and dtypes of the carry: the back-pointers ride in both.
    def forward(carry, inputs):
        delta, _ = carry
        emission, keep = _split(inputs)
        scores = delta[:, :, None] + transitions[None]
        pointers = ops.cast(ops.argmax(scores, axis=1), "int32")
        new = ops.max(scores, axis=1) + emission
        # At padding the path stays put: the score is carried over and the
        # back-pointer is the identity, so backtracking walks through the
        # padding to the last real token unchanged.
        delta = new * keep + delta * (1.0 - keep)
        pointers = ops.where(keep > 0, pointers, identity)
        return (delta, pointers), (delta, pointers)

    delta = start[None] + emissions[:, 0]
    (delta, _), outputs = _scan(
        forward,
        (delta, ops.zeros_like(delta, "int32")),
        _steps(emissions, mask),
    )
    best = ops.cast(ops.argmax(delta + end[None], axis=1), "int32")
    pointers = None if outputs is None else outputs[1]

    def backward(tag, pointer):
        previous = ops.take_along_axis(pointer, tag[:, None], axis=1)[:, 0]
        return previous, tag

    if pointers is None:
        # A static time dimension of 1: there is nothing to backtrack.
        tags = best[:, None]
    else:
        first, rest = _scan(backward, best, pointers, reverse=True)
        tags = ops.concatenate(
            [first[:, None], ops.moveaxis(rest, 0, 1)], axis=1
        )
    return tags * ops.cast(mask, "int32")


@keras.saving.register_keras_serializable(package="kfinetune")
class CRF(keras.layers.Layer):
    """Linear-chain conditional random field over per-token potentials.

    Put it after a layer that scores every tag at every token (for example a
    `Dense(num_labels)` on a backbone's sequence output). It learns a
    `transitions` matrix (`[i, j]` scores tag `i` followed by tag `j`) and
    `start` / `end` scores, so the tags are decoded jointly.

    * In inference (`training=False`: `predict`, `evaluate`, `model.export`)
      it returns the Viterbi path, int32 tags of shape `(batch, time)`, with
      0 at padding.
    * In training (`training=True`: `fit`) it returns its potentials packed
      in one float tensor, which `kfinetune.layers.CRFLoss` turns into the
      negative log-likelihood of the gold tags. Compile with
      `loss=kfinetune.layers.CRFLoss()` and train with a plain
      `model.fit(x, y)`, `y` the `(batch, time)` integer tags.

    Why a packed output and a separate loss: a Keras loss sees only
    `(y_true, y_pred)`, and the likelihood needs the transition weights and
    the mask as well as the emissions. Putting them in the training output
    keeps the model an ordinary functional model (no custom `train_step`,
    no gold tags as a model input, gradients reach the transitions through
    the loss), and the saved model holds nothing but this layer and its
    weights. The training output is not meant to be read: use `predict`
    for tags. Since `evaluate` also runs in inference, `CRFLoss` reports
    there the fraction of wrongly decoded tags instead of the likelihood.

    The log-likelihood uses the forward algorithm and decoding the Viterbi
    algorithm, both as `keras.ops.scan` loops over time: they run under
    `jit_compile=True` (XLA) and in exported SavedModels, with any sequence
    length. Computation is in float32 whatever the dtype policy.

    A mask is 1 for the tokens and 0 elsewhere, usually padding at the end
    (keras-hub's `padding_mask`), but any pattern works: the chain links
    the unmasked positions in order and skips the others. Pass one as
    `mask=`, or let Keras propagate it from the previous layer. Masked
    positions change nothing: not the likelihood, not the decoded tags of
    the real tokens (they decode to 0). A sequence whose mask is all 0
    still scores its first position.

    **A chain over words, not word pieces.** Pass `chain_mask=`, 1 at the
    positions the chain runs over (each word's first piece), and the chain
    links those positions only, in order: continuation pieces, `[CLS]`,
    `[SEP]` and padding never enter it, and the likelihood uses the gold
    tags at those positions only. The decoded tags come back at every
    position: each position gets the tag of the last chain position at or
    before it (so a word's continuation pieces, and the `[SEP]` after the
    last word, repeat its tag), and positions before the first chain
    position (`[CLS]`) and padding get 0.

    **Constraints.** `constraints` forbids transitions (and start or end
    tags) that the tagging scheme makes impossible, such as `O` followed
    by `I-PER` in IOB2: they score `-10,000` in training and in decoding,
    so the decoded path never takes one. Build them with
    `kfinetune.data.tag_constraints(tag_names, scheme)`. Gold tags must
    obey them (a gold path through a forbidden transition has a loss near
    10,000); convert IOB1 files when reading them
    (`kfinetune.data.from_conll(..., scheme="IOB1")`).

    Args:
        num_labels: the number of tags, at least 2.
        constraints: `None` (every transition allowed), or a dict with
            boolean `"transitions"` `(num_labels, num_labels)` (`[i, j]`:
            may tag `i` be followed by tag `j`), `"start"` and `"end"`
            `(num_labels,)` (may a sequence start / end with the tag), as
            returned by `kfinetune.data.tag_constraints`. Defaults to
            `None`.
        **kwargs: base layer arguments such as `name`.

    Input shape:
        `(batch, time, num_labels)` potentials, an optional mask
        `(batch, time)` and an optional chain mask `(batch, time)`.

    Output shape:
        Inference: `(batch, time)` int32 tags. Training: a float32 tensor
        `(batch, time + num_labels + 2, num_labels + 3)` read by `CRFLoss`.

    Example:

    ```python
    # Any family of `kfinetune.encoders`.
    backbone = kfinetune.testing.small_backbone("roberta")
    inputs = backbone.input
    hidden = kfinetune.encoders.sequence_output(backbone, inputs)
    emissions = keras.layers.Dense(5)(hidden)
    tags = kfinetune.layers.CRF(5)(emissions, mask=inputs["padding_mask"])
    model = keras.Model(inputs, tags)
    model.compile("adam", loss=kfinetune.layers.CRFLoss())
    ```

    A chain over words, with the scheme's impossible transitions forbidden
    (`word_mask` is 1 on each word's first piece,
    `kfinetune.data.TokenLabels.word_mask`):

    ```python
    crf = kfinetune.layers.CRF(
        5, constraints=kfinetune.data.tag_constraints(tag_names, "IOB2"))
    tags = crf(emissions, mask=padding_mask, chain_mask=word_mask)
    ```
    """

    def __init__(self, num_labels, constraints=None, **kwargs):
        checks.at_least("num_labels", num_labels, 2, integer=True)
        if constraints is not None:
            if not isinstance(constraints, dict) or set(constraints) != {
                "transitions",
                "start",
                "end",
            }:
                raise ValueError(
                    "`constraints` must be None or a dict with the keys "
                    "'transitions', 'start' and 'end' (see "
                    "`kfinetune.data.tag_constraints`). Received: "
                    f"constraints={constraints!r}"
                )
            penalties = _penalties(constraints, num_labels)
            constraints = {
                key: np.asarray(constraints[key], bool).tolist()
                for key in ("transitions", "start", "end")
            }
        else:
            penalties = None
        super().__init__(**kwargs)
        self.num_labels = num_labels
        self.constraints = constraints
        self._penalties = penalties
        self.supports_masking = True

    def build(self, input_shape):
        last = input_shape[-1]
        if len(input_shape) != 3 or last != self.num_labels:
            raise ValueError(
                "`CRF` expects potentials of shape (batch, time, "
                f"num_labels={self.num_labels}). Received: "
                f"input_shape={tuple(input_shape)}"
            )
        self.transitions = self.add_weight(
            name="transitions",
            shape=(self.num_labels, self.num_labels),
            initializer="zeros",
        )
        self.start = self.add_weight(
            name="start", shape=(self.num_labels,), initializer="zeros"
        )
        self.end = self.add_weight(
            name="end", shape=(self.num_labels,), initializer="zeros"
        )

    def _parameters(self):
        parameters = (
            ops.cast(self.transitions, "float32"),
            ops.cast(self.start, "float32"),
            ops.cast(self.end, "float32"),
        )
        if self._penalties is None:
            return parameters
        return tuple(
            value + ops.convert_to_tensor(penalty)
            for value, penalty in zip(parameters, self._penalties, strict=True)
        )

    def log_partition(self, emissions, mask=None):
        """The log-partition `log Z` of each sequence (forward algorithm).

        Args:
            emissions: potentials `(batch, time, num_labels)`.
            mask: `(batch, time)`, 1 for the tokens the chain links, in
                order. Defaults to `None` (every position).

        Returns:
            `(batch,)` float32.

        Example:

        ```python
        crf = kfinetune.layers.CRF(3)
        crf.build((None, None, 3))
        log_z = crf.log_partition(np.zeros((1, 4, 3), "float32"))
        # 4 * log(3): every one of the 3**4 paths scores 0
        ```
        """
        emissions, _, mask, _ = _chain(emissions, mask)
        return _log_partition(emissions, mask, *self._parameters())

    def log_likelihood(self, emissions, tags, mask=None):
        """The log-likelihood of the tag paths `tags`.

        Args:
            emissions: potentials `(batch, time, num_labels)`.
            tags: integer tags `(batch, time)`; values at padding are
                ignored.
            mask: `(batch, time)`, 1 for the tokens the chain links, in
                order. Defaults to `None` (every position).

        Returns:
            `(batch,)` float32, `score(tags) - log Z`.

        Example:

        ```python
        crf = kfinetune.layers.CRF(3)
        crf.build((None, None, 3))
        crf.log_likelihood(np.zeros((1, 2, 3), "float32"), [[0, 2]])
        # log(1 / 9)
        ```
        """
        emissions, order, mask, _ = _chain(emissions, mask)
        if order is not None:
            tags = ops.take_along_axis(ops.cast(tags, "int32"), order, axis=1)
        transitions, start, end = self._parameters()
        score = _sequence_score(emissions, tags, mask, transitions, start, end)
        return score - _log_partition(emissions, mask, transitions, start, end)

    def decode(self, emissions, mask=None):
        """The highest-scoring tag path of each sequence (Viterbi).

        Args:
            emissions: potentials `(batch, time, num_labels)`.
            mask: `(batch, time)`, 1 for the tokens the chain links, in
                order. Defaults to `None` (every position).

        Returns:
            `(batch, time)` int32 tags, 0 at padding.

        Example:

        ```python
        crf = kfinetune.layers.CRF(2)
        crf.build((None, None, 2))
        crf.decode(np.array([[[0.0, 1.0], [1.0, 0.0]]], "float32"))
        # [[1, 0]]
        ```
        """
        emissions, order, chain, positions = _chain(emissions, mask)
        tags = _decode(emissions, chain, *self._parameters())
        if order is None:
            return tags
        return _to_positions(tags, positions, positions)

    def call(self, inputs, mask=None, chain_mask=None, training=None):
        emissions = ops.cast(inputs, "float32")
        mask = _float_mask(mask, emissions)
        positions = mask
        if chain_mask is not None:
            positions = ops.cast(chain_mask, "float32") * mask
        chain_emissions, order, chain, _ = _chain(emissions, positions)
        if not training:
            tags = _decode(chain_emissions, chain, *self._parameters())
            return _to_positions(tags, positions, mask)
        batch = ops.shape(emissions)[0]
        transitions, start, end = self._parameters()
        parameters = ops.concatenate(
            [transitions, start[None], end[None]], axis=0
        )
        parameters = ops.pad(parameters, [[0, 0], [0, 3]])
        parameters = ops.broadcast_to(
            parameters[None], (batch, self.num_labels + 2, self.num_labels + 3)
        )
        # The order rides along as floats (exact below 2**24 positions):
        # `CRFLoss` gathers the gold tags of the chain positions with it,
        # and `decode_potentials` puts decoded tags back at the positions.
        tokens = ops.concatenate(
            [
                chain_emissions,
                chain[:, :, None],
                ops.cast(order, "float32")[:, :, None],
                mask[:, :, None],
            ],
            axis=-1,
        )
        return ops.concatenate([tokens, parameters], axis=1)

    def compute_mask(self, inputs, mask=None):
        # The output is either tags or the packed potentials; neither is
        # masked by Keras (`CRFLoss` applies the mask itself).
        return None

    def compute_output_spec(
        self, inputs, mask=None, chain_mask=None, training=None
    ):
        return keras.KerasTensor(inputs.shape[:2], dtype="int32")

    def get_config(self):
        return {
            **super().get_config(),
            "num_labels": self.num_labels,
            "constraints": self.constraints,
        }


def _unpack(packed):
    """`(emissions, chain, order, mask, transitions, start, end)` of a
    `CRF`'s training output."""
    num_labels = packed.shape[-1] - 3
    time = ops.shape(packed)[1] - num_labels - 2
    tokens = packed[:, :time]
    parameters = packed[0, time:, :num_labels]
    return (
        tokens[..., :num_labels],
        tokens[..., num_labels],
        ops.cast(tokens[..., num_labels + 1], "int32"),
        tokens[..., num_labels + 2],
        parameters[:num_labels],
        parameters[num_labels],
        parameters[num_labels + 1],
    )


def decode_potentials(packed):
    """The Viterbi tags of a `CRF`'s training output: what the layer
    returns in inference for the same inputs.

    Args:
        packed: a `CRF` layer's output with `training=True`.

    Returns:
        `(batch, time)` int32 tags.
    """
    emissions, chain, order, mask, transitions, start, end = _unpack(
        ops.cast(packed, "float32")
    )
    tags = _decode(emissions, chain, transitions, start, end)
    # The chain's positions, back in place: position `order[k]` is in the
    # chain when entry `k` is.
    time = ops.shape(order)[1]
    positions = ops.einsum(
        "bkt,bk->bt", ops.one_hot(order, time, dtype="float32"), chain
    )
    return _to_positions(tags, positions, mask)


@keras.saving.register_keras_serializable(package="kfinetune")
class CRFLoss(keras.losses.Loss):
    """Negative log-likelihood of the gold tags under a `CRF` layer.

    `y_true` holds integer tags `(batch, time)` (values at padding are
    ignored); `y_pred` is the training output of a `CRF` layer. The loss of
    a sequence is `log Z - score(y_true)`, summed over its tokens (not
    averaged), so long sentences weigh more, as in the CRF literature.

    Given the `CRF`'s inference output (decoded tags, as in `evaluate`),
    it returns each sequence's fraction of tags that differ from `y_true`
    on non-padding tokens: the likelihood needs the potentials, which
    inference does not produce. Padding is recognised there as the
    positions where `y_true` is negative, so pad the tags with `-1` to
    keep padding out of that rate.

    Args:
        reduction: see `keras.losses.Loss`. Defaults to
            `"sum_over_batch_size"`.
        name: the loss name. Defaults to `"crf_loss"`.
        dtype: see `keras.losses.Loss`. Defaults to `None`.

    Example:

    ```python
    model.compile("adam", loss=kfinetune.layers.CRFLoss())
    model.fit(x, tags)
    ```
    """

    def __init__(
        self, reduction="sum_over_batch_size", name="crf_loss", dtype=None
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        tags = ops.cast(y_true, "int32")
        if len(y_pred.shape) == 2:
            valid = ops.cast(tags >= 0, "float32")
            wrong = ops.cast(tags != ops.cast(y_pred, "int32"), "float32")
            return ops.sum(wrong * valid, axis=1) / ops.maximum(
                ops.sum(valid, axis=1), 1.0
            )
        if len(y_pred.shape) != 3 or len(tags.shape) != 2:
            raise ValueError(
                "`CRFLoss` expects integer tags `(batch, time)` and a `CRF` "
                "layer's output. Received: "
                f"y_true.shape={tuple(tags.shape)}, "
                f"y_pred.shape={tuple(y_pred.shape)}"
            )
        emissions, mask, order, _, transitions, start, end = _unpack(
            ops.cast(y_pred, "float32")
        )
        # The gold tags of the chain positions (all positions for a chain
        # over every token).
        tags = ops.take_along_axis(tags, order, axis=1)
        score = _sequence_score(emissions, tags, mask, transitions, start, end)
        log_z = _log_partition(emissions, mask, transitions, start, end)
        return log_z - score
