"""Round-trip and equivalence checks that every kfinetune feature must pass.

Each helper compares models through `model.predict` (compiled functions go
stale after structural changes: Keras keeps running the graph it traced
until they are reset, so `model(x)` alone can hide a bug) and raises
`AssertionError` with the largest difference.
"""

import contextlib
import copy
import functools
import os

import keras
import numpy as np
import tensorflow as tf

from kfinetune import preprocessing
from kfinetune.compiling import compile_and_build

FLOAT32_TOLERANCE = 1e-5
BFLOAT16_TOLERANCE = 1e-2


def assert_outputs_close(actual, expected, atol=FLOAT32_TOLERANCE, rtol=0.0):
    """Asserts two (possibly nested) model outputs are equal within `atol`.

    Args:
        actual: an array, tensor, or a dict/list of them.
        expected: the same structure as `actual`.
        atol: absolute tolerance. Defaults to `1e-5`.
        rtol: relative tolerance. Defaults to `0.0`.
    """
    actual = keras.tree.flatten(actual)
    expected = keras.tree.flatten(expected)
    if len(actual) != len(expected):
        raise AssertionError(
            f"Outputs differ in structure: {len(actual)} tensors vs "
            f"{len(expected)}."
        )
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(
            np.asarray(a, "float32"),
            np.asarray(e, "float32"),
            atol=atol,
            rtol=rtol,
        )


def predict(model, x, batch_size=None):
    """`model.predict(x, verbose=0)` as float32 NumPy arrays.

    A keras-hub task preprocesses raw inputs once, eagerly
    (`kfinetune.preprocessing.predict`), rather than tracing its
    preprocessor again in every call.
    """
    out = preprocessing.predict(model, x, batch_size=batch_size or 32)
    return keras.tree.map_structure(lambda t: np.asarray(t, "float32"), out)


def assert_config_round_trip(obj):
    """Asserts `obj` survives `get_config` / `from_config` and Keras
    serialization with an identical config.

    Works for layers, models, optimizers, schedules and anything registered
    with `keras.saving.register_keras_serializable`.

    Args:
        obj: the object to round-trip.

    Returns:
        The object rebuilt by `keras.saving.deserialize_keras_object`.
    """
    config = obj.get_config()
    # Some from_config implementations (keras.layers.Wrapper's) consume
    # their argument.
    rebuilt = type(obj).from_config(copy.deepcopy(config))
    if rebuilt.get_config() != config:
        raise AssertionError(
            f"{type(obj).__name__}.from_config(config).get_config() differs "
            f"from config.\nBefore: {config}\nAfter: {rebuilt.get_config()}"
        )
    serialized = keras.saving.serialize_keras_object(obj)
    revived = keras.saving.deserialize_keras_object(serialized)
    if type(revived) is not type(obj):
        raise AssertionError(
            f"Deserialized a {type(revived).__name__}, expected a "
            f"{type(obj).__name__}: is the class registered with "
            "`keras.saving.register_keras_serializable`?"
        )
    if revived.get_config() != config:
        raise AssertionError(
            f"Keras serialization changed the config of "
            f"{type(obj).__name__}.\nBefore: {config}\n"
            f"After: {revived.get_config()}"
        )
    return revived


def assert_keras_round_trip(model, x, directory, atol=FLOAT32_TOLERANCE):
    """Saves `model` as `.keras`, loads it, and compares predictions.

    Args:
        model: a built Keras model.
        x: inputs accepted by `model.predict`.
        directory: a folder to write `model.keras` into.
        atol: absolute tolerance. Defaults to `1e-5`.

    Returns:
        The reloaded model.
    """
    path = os.path.join(directory, "model.keras")
    expected = predict(model, x)
    model.save(path)
    reloaded = keras.models.load_model(path)
    if type(reloaded) is not type(model):
        raise AssertionError(
            f"Reloaded a {type(reloaded).__name__}, expected a "
            f"{type(model).__name__}."
        )
    assert_outputs_close(predict(reloaded, x), expected, atol=atol)
    return reloaded


def assert_saved_model_round_trip(model, x, directory, atol=FLOAT32_TOLERANCE):
    """Exports `model` as a TF SavedModel, reloads it, compares outputs.

    Uses `model.export(directory)`, reloads with `tf.saved_model.load` and
    calls its `serve` endpoint on `x`.

    Args:
        model: a built Keras model.
        x: inputs of the `serve` endpoint (for keras-hub tasks, the
            preprocessed dict).
        directory: the export folder (created).
        atol: absolute tolerance. Defaults to `1e-5`.

    Returns:
        The reloaded `tf.saved_model` object.
    """
    expected = predict(model, x)
    model.export(directory, verbose=False)
    reloaded = tf.saved_model.load(directory)
    inputs = keras.tree.map_structure(tf.convert_to_tensor, x)
    if isinstance(inputs, dict):
        # The exported dtypes can differ from the NumPy inputs' (bool masks
        # are served as int32): cast to the signature's.
        spec = reloaded.signatures["serve"].structured_input_signature[1]
        inputs = {k: tf.cast(v, spec[k].dtype) for k, v in inputs.items()}
    assert_outputs_close(reloaded.serve(inputs), expected, atol=atol)
    return reloaded


def fit_and_predict(
    build_model,
    x,
    y,
    steps=3,
    batch_size=None,
    jit_compile=False,
    strategy=None,
    optimizer=None,
    loss=None,
):
    """Builds a model, trains it for `steps` batches, and predicts.

    The model is built, compiled and trained under `strategy.scope()` when a
    strategy is given. Data are not shuffled, so two calls with the same
    arguments see the same batches.

    Args:
        build_model: a zero-argument function returning a fresh model (it
            should seed its own initialisation, e.g. with the testing
            factories' `seed`).
        x: training inputs (also used for the final `predict`).
        y: training targets.
        steps: optimizer steps. Defaults to `3`.
        batch_size: rows per step. Defaults to all of `x`.
        jit_compile: passed to `compile`. Defaults to `False`.
        strategy: a `tf.distribute.Strategy`, or `None` for the default.
        optimizer: a zero-argument function returning an optimizer.
            Defaults to SGD with learning rate 0.1.
        loss: a Keras loss. Defaults to sparse categorical cross-entropy on
            logits.

    Returns:
        A tuple `(losses, predictions)`: the loss of each step and the final
        `model.predict(x)`.
    """
    scope = strategy.scope() if strategy else contextlib.nullcontext()
    n = len(keras.tree.flatten(x)[0])
    batch_size = batch_size or n
    with scope:
        model = build_model()
        dataset = (
            tf.data.Dataset.from_tensor_slices((x, y))
            .batch(batch_size, drop_remainder=True)
            .repeat()
        )
        compile_and_build(
            model,
            data=dataset,
            optimizer=(optimizer or (lambda: keras.optimizers.SGD(0.1)))(),
            loss=loss
            or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
        history = model.fit(dataset, steps_per_epoch=1, epochs=steps, verbose=0)
        return history.history["loss"], predict(model, x)


def assert_jit_compile_consistent(
    build_model, x, y, steps=3, atol=1e-4, **kwargs
):
    """Asserts training with `jit_compile=True` (XLA, what TPUs run)
    matches training without it: per-step losses and final predictions.

    Args:
        build_model: see `fit_and_predict`.
        x: inputs.
        y: targets.
        steps: optimizer steps. Defaults to `3`.
        atol: tolerance on losses and predictions. Defaults to `1e-4`.
        **kwargs: passed to `fit_and_predict`.

    Returns:
        The `(losses, predictions)` of the XLA run.
    """
    eager = fit_and_predict(build_model, x, y, steps, **kwargs)
    xla = fit_and_predict(build_model, x, y, steps, jit_compile=True, **kwargs)
    np.testing.assert_allclose(xla[0], eager[0], atol=atol, rtol=atol)
    assert_outputs_close(xla[1], eager[1], atol=atol)
    return xla


@functools.cache
def two_cpu_strategy():
    """A `MirroredStrategy` over two logical CPU devices, one per process.

    One shared strategy, not a new one per call: every new
    `MirroredStrategy` numbers its collective all-reduces from the same
    keys, and TensorFlow remembers each key's tensor shape for the whole
    process, so a second strategy training a model with another number of
    weights fails ("Shape mismatch in the collective instance 100").

    The devices must have been configured before TensorFlow initialised
    (kfinetune's test `conftest.py` does it). Never combine it with
    `jit_compile=True` on CPU: XLA then reads a resource on `CPU:1` from
    `CPU:0` and fails, even for a plain BERT.

    Raises:
        RuntimeError: fewer than two logical CPU devices exist.
    """
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        raise RuntimeError(
            "MirroredStrategy tests need two logical CPU devices, configured "
            "with `tf.config.set_logical_device_configuration` before "
            f"TensorFlow initialises. Found: {[d.name for d in cpus]}"
        )
    return tf.distribute.MirroredStrategy([d.name for d in cpus[:2]])


def assert_mirrored_consistent(build_model, x, y, steps=3, rtol=1e-3, **kwargs):
    """Asserts training under `MirroredStrategy` on two CPUs matches one
    device: per-step losses and final predictions (relative tolerance).

    Build models with dropout off: the replicas draw different dropout
    masks. The batch size must be even.

    Args:
        build_model: see `fit_and_predict`.
        x: inputs.
        y: targets.
        steps: optimizer steps. Defaults to `3`.
        rtol: relative tolerance. Defaults to `1e-3`.
        **kwargs: passed to `fit_and_predict` (not `jit_compile`).

    Returns:
        The `(losses, predictions)` of the mirrored run.
    """
    if kwargs.get("jit_compile"):
        raise ValueError(
            "MirroredStrategy with jit_compile=True fails on CPU "
            "(XLA reads a resource on CPU:1 from CPU:0); test them "
            "separately. "
            f"Received: jit_compile={kwargs['jit_compile']}"
        )
    single = fit_and_predict(build_model, x, y, steps, **kwargs)
    mirrored = fit_and_predict(
        build_model, x, y, steps, strategy=two_cpu_strategy(), **kwargs
    )
    np.testing.assert_allclose(mirrored[0], single[0], rtol=rtol)
    assert_outputs_close(mirrored[1], single[1], atol=rtol, rtol=rtol)
    return mirrored


def assert_bfloat16_close(build_model, x):
    """Builds a model under float32 and under the `mixed_bfloat16` policy
    and asserts their predictions agree within bfloat16's tolerance
    (relative to the size of the outputs: bfloat16 keeps 8 bits of
    mantissa).

    Args:
        build_model: a zero-argument function returning a fresh model (it
            should seed its own initialisation, so both builds start from
            the same weights).
        x: inputs accepted by `model.predict`.

    Returns:
        The `mixed_bfloat16` model, e.g. to train it.

    Example:

    ```python
    model = kfinetune.testing.assert_bfloat16_close(
        kfinetune.testing.small_bert_classifier,
        kfinetune.testing.small_bert_inputs(),
    )
    ```
    """
    expected = predict(build_model(), x)
    with dtype_policy("mixed_bfloat16"):
        model = build_model()
    assert_outputs_close(
        predict(model, x),
        expected,
        atol=10 * BFLOAT16_TOLERANCE,
        rtol=5 * BFLOAT16_TOLERANCE,
    )
    return model


@contextlib.contextmanager
def dtype_policy(name):
    """Sets the global Keras dtype policy inside a `with` block.

    Example:

    ```python
    with kfinetune.testing.dtype_policy("mixed_bfloat16"):
        model = kfinetune.testing.small_bert_classifier()
    ```
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
