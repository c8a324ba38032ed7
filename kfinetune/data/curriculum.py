"""`curriculum`: training data ordered in stages from easy to hard."""

import keras
import numpy as np
import tensorflow as tf

from kfinetune import checks
from kfinetune import preprocessing
from kfinetune.data.labelled_texts import check_seed

DIFFICULTIES = ("length",)


def _elements(dataset):
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            "`dataset` must be an unbatched `tf.data.Dataset`. "
            f"Received: dataset={dataset!r}"
        )
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise ValueError(
            "`dataset` must yield (x, y) or (x, y, sample_weight). "
            f"Received: element_spec={spec}"
        )
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(
            "`dataset` must be finite: every element is scored and sorted. "
            "Received: dataset.cardinality()=INFINITE"
        )
    # One pass, kept: a dataset that reshuffles every pass is scored and
    # staged in the order of this pass.
    columns = [[] for _ in tf.nest.flatten(spec)]
    for element in dataset.as_numpy_iterator():
        for column, value in zip(
            columns, tf.nest.flatten(element), strict=True
        ):
            column.append(value)
    if not columns[0]:
        raise ValueError(
            "`dataset` is empty. Received: dataset.cardinality()=0"
        )
    try:
        columns = [np.stack(column) for column in columns]
    except ValueError as error:
        raise ValueError(
            "Every element of `dataset` must have the same shapes (pad "
            f"before the curriculum). Received: {error}"
        ) from error
    return spec, columns


def _length(x):
    if isinstance(x, bytes):
        return len(x.split())
    if isinstance(x, dict) and "padding_mask" in x:
        return int(np.sum(x["padding_mask"]))
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):
        return int(np.count_nonzero(x))
    raise ValueError(
        '`difficulty="length"` needs each `x` to be a text (its length is '
        "its number of words), a dict with a `padding_mask`, or integer "
        "token ids (the non-zero ones are counted). "
        f"Received: x of type {type(x).__name__}"
    )


def _teacher_losses(teacher, spec, columns, loss, batch_size):
    loss = keras.losses.get(
        loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    if isinstance(loss, keras.losses.Loss):
        # A copy that keeps one loss per example: the loss's own
        # reduction would average them.
        loss = type(loss).from_config({**loss.get_config(), "reduction": None})
    x, y = tf.nest.pack_sequence_as(spec, columns)[:2]
    inputs = tf.data.Dataset.from_tensor_slices(x).batch(batch_size)
    predictions = preprocessing.predict(teacher, inputs, batch_size)
    losses = keras.ops.convert_to_numpy(loss(y, predictions))
    if losses.shape != (len(y),):
        raise ValueError(
            "The teacher's `loss` must give one number per example "
            f"({len(y)}). Received: losses of shape {losses.shape}"
        )
    return losses.astype("float64")


def _scores(difficulty, spec, columns, loss, batch_size):
    size = len(columns[0])
    if isinstance(difficulty, keras.Model):
        return _teacher_losses(difficulty, spec, columns, loss, batch_size)
    if loss is not None:
        raise ValueError(
            "`loss` scores examples under a teacher model; pass the model "
            f"as `difficulty`. Received: difficulty={difficulty!r}, "
            f"loss={loss!r}"
        )
    elements = [
        tf.nest.pack_sequence_as(spec, [column[i] for column in columns])
        for i in range(size)
    ]
    if isinstance(difficulty, str):
        checks.one_of("difficulty", difficulty, DIFFICULTIES)
        return np.array([_length(element[0]) for element in elements])
    if callable(difficulty):
        return np.array([float(difficulty(*element)) for element in elements])
    scores = np.asarray(difficulty)
    if scores.shape != (size,) or not np.issubdtype(scores.dtype, np.number):
        raise ValueError(
            '`difficulty` must be "length", a Keras model (its loss on each '
            "example), a function of an element, or one number per element "
            f"({size}). Received: difficulty={difficulty!r}"
        )
    return scores.astype("float64")


def curriculum(
    dataset,
    difficulty="length",
    stages=3,
    cumulative=True,
    epochs_per_stage=1,
    loss=None,
    batch_size=64,
    seed=0,
):
    """Orders training data in stages, from the easiest examples to all.

    The elements are scored by `difficulty`, sorted from easy to hard (ties
    in a seeded random order) and cut into `stages` buckets of equal size.
    With `cumulative=True` (the "baby steps" curriculum of Bengio et al.,
    2009, and Spitkovsky et al., 2010) stage `s` trains on the easiest
    `s / stages` of the data, so the last stage is the whole dataset; with
    `cumulative=False` stage `s` trains on bucket `s` alone, one pass over
    the data from easy to hard. One pass over the result runs every stage
    in order, each `epochs_per_stage` times, shuffled within the stage
    (seeded, reshuffled every pass), so `model.fit(result.batch(32),
    epochs=1)` trains the whole curriculum; more epochs repeat it. Batch
    the result: a batch near a stage boundary mixes two stages.

    The dataset is read once (a dataset that reshuffles every pass is
    staged in the order of that pass) and held in memory.

    Args:
        dataset: an unbatched, finite `tf.data.Dataset` of `(x, y)` or
            `(x, y, sample_weight)` whose elements have fixed shapes, e.g.
            `TextClassificationData.train`.
        difficulty: how hard each element is, larger is harder:
            `"length"` (a text's number of words, the unpadded length of
            a token dict, or the number of non-zero token ids), a Keras
            model (a teacher: the element's loss under it, predicted in
            inference mode; keras-hub tasks preprocess raw text), a
            function `f(x, y)` or `f(x, y, sample_weight)` of one element
            as NumPy values (texts are `bytes`) returning a number, or an
            array of one number per element, in the dataset's order.
            Defaults to `"length"`.
        stages: the number of stages. Defaults to `3`.
        cumulative: whether each stage adds the next bucket to the previous
            ones (baby steps) instead of replacing them. Defaults to
            `True`.
        epochs_per_stage: passes over each stage. Defaults to `1`.
        loss: the loss of a teacher `difficulty`, a Keras loss or its name.
            Defaults to sparse categorical cross-entropy on logits.
        batch_size: the teacher's prediction batch size. Defaults to `64`.
        seed: seed of the tie order and of the shuffles. The same seed
            gives the same stages and orders. Defaults to `0`.

    Returns:
        An unbatched `tf.data.Dataset` with the elements of `dataset`, of
        known size.

    Raises:
        ValueError: `dataset` is not a finite, non-empty dataset of `(x, y)`
            elements of fixed shapes; `difficulty` is not one of the forms
            above or gives the wrong number of scores; `stages` is not a
            positive integer no larger than the dataset; `loss` is given
            without a teacher; another argument is invalid.

    Example:

    ```python
    data = kfinetune.data.tweet_sentiment(classes=2, seed=0)
    teacher = ...  # a classifier fine-tuned before
    staged = kfinetune.data.curriculum(
        data.train, difficulty=teacher, stages=3, seed=0)
    model.fit(staged.batch(32), epochs=1)
    ```
    """
    checks.positive_integer("stages", stages)
    checks.boolean("cumulative", cumulative)
    checks.positive_integer("epochs_per_stage", epochs_per_stage)
    checks.positive_integer("batch_size", batch_size)
    seed = check_seed(seed)
    spec, columns = _elements(dataset)
    size = len(columns[0])
    if stages > size:
        raise ValueError(
            f"`stages` must be at most the number of elements ({size}). "
            f"Received: stages={stages}"
        )
    scores = _scores(difficulty, spec, columns, loss, batch_size)
    if not np.all(np.isfinite(scores)):
        raise ValueError(
            "Every difficulty score must be finite. "
            f"Received: {int(np.sum(~np.isfinite(scores)))} non-finite scores"
        )
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.permutation(size), scores))
    buckets = np.array_split(order, stages)
    tensors = [tf.constant(column) for column in columns]

    def element(index):
        return tf.nest.pack_sequence_as(
            spec, [tf.gather(t, index) for t in tensors]
        )

    staged = None
    for stage in range(stages):
        members = np.concatenate(
            buckets[: stage + 1] if cumulative else buckets[stage : stage + 1]
        )
        part = (
            tf.data.Dataset.from_tensor_slices(members)
            .shuffle(
                len(members), seed=seed + stage, reshuffle_each_iteration=True
            )
            .repeat(epochs_per_stage)
        )
        staged = part if staged is None else staged.concatenate(part)
    return staged.map(element)
