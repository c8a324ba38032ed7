"""`export_text_classifier`: a keras-hub text classifier as a SavedModel
that reads raw text (or sentence pairs), and `load_text_classifier`, which
loads any of kfinetune's text SavedModels."""

import keras
import tensorflow as tf

from kfinetune import checks


def _check_threshold(threshold, multi_label):
    if threshold is None:
        return 0.5
    if not multi_label:
        raise ValueError(
            "`threshold` is the probability above which a multi-label "
            "model predicts a class; pass `multi_label=True` with it. "
            f"Received: threshold={threshold!r}"
        )
    checks.in_range("threshold", threshold, 0, 1, low_closed=False)
    return float(threshold)


def _sigmoid_of(model):
    """Whether the model's outputs need a sigmoid to be probabilities
    (logits), or are a sigmoid's already."""
    activation = getattr(model.layers[-1], "activation", None)
    if activation is keras.activations.sigmoid:
        return False
    if activation in (None, keras.activations.linear):
        return True
    raise ValueError(
        "A multi-label model must output a logit or a sigmoid's "
        "probability per class, and this one's last layer's activation is "
        f"{getattr(activation, '__name__', activation)}. "
        f"Received: model={model.name!r}, multi_label=True"
    )


def export_text_classifier(
    model,
    filepath,
    class_names=None,
    verbose=True,
    *,
    pairs=False,
    multi_label=False,
    threshold=None,
):
    """Exports a text classifier with its preprocessor as a SavedModel.

    The SavedModel's `serve` endpoint (also its `serving_default`
    signature) takes a 1-D `tf.string` tensor of texts (`texts`); with
    `pairs=True`, two of them (`texts` and `text_pairs`, packed as
    `[CLS] text [SEP] text_pair [SEP]`). It returns a dict:

    - `outputs`: what `model.predict` returns for those inputs (logits
      unless the model has an activation);
    - one class per text (the default): `class_ids` (the arg-max) and,
      when `class_names` are given, `labels` (the class names as strings);
    - `multi_label=True`: `probabilities` (a sigmoid per class, of logits),
      `predicted` (int32 multi-hot: 1 where the probability is above
      `threshold`) and, when `class_names` are given, `labels`: a
      `(batch, num_classes)` string tensor of the predicted class names
      in class order, padded with `""`.

    The tokenizer uses TensorFlow Text ops: load the SavedModel with
    `load_text_classifier`, which registers them first.

    Args:
        model: a built keras-hub `TextClassifier` with a `preprocessor`
            (or a `kfinetune.peft` model of one).
        filepath: the folder to write.
        class_names: optional class names, one per model output.
        verbose: print the endpoint summary. Defaults to `True`.
        pairs: serve sentence pairs: two string inputs. Defaults to
            `False`.
        multi_label: serve per-class probabilities and every class above
            `threshold`, not the top class. Defaults to `False`.
        threshold: with `multi_label=True`, the probability above which a
            class is predicted, in `(0, 1)`. Defaults to `None`: `0.5`.

    Raises:
        ValueError: the model has no preprocessor, `class_names` does not
            match the number of outputs, `pairs` or `multi_label` is not a
            boolean, `threshold` is given without `multi_label=True` or is
            not in `(0, 1)`, or a multi-label model's last activation is
            neither linear nor a sigmoid.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    kfinetune.export.export_text_classifier(
        model, "exported/", class_names=["negative", "positive"])
    reloaded = kfinetune.export.load_text_classifier("exported/")
    reloaded.serve(tf.constant(["what a great day"]))["labels"]

    # Sentence pairs, several labels each:
    kfinetune.export.export_text_classifier(
        model, "nli/", class_names=names, pairs=True, multi_label=True)
    kfinetune.export.load_text_classifier("nli/").serve(
        tf.constant(["a man sleeps"]), tf.constant(["a person rests"]))
    ```
    """
    checks.boolean("pairs", pairs)
    checks.boolean("multi_label", multi_label)
    threshold = _check_threshold(threshold, multi_label)
    preprocessor = getattr(model, "preprocessor", None)
    if preprocessor is None:
        raise ValueError(
            "`model` has no preprocessor, so the export could not read raw "
            "text. Attach one (`model.preprocessor = ...`) or build the model "
            "with `kfinetune.presets.text_classifier`. "
            f"Received: model={model.name!r} with preprocessor=None"
        )
    num_outputs = model.outputs[0].shape[-1]
    if class_names is not None and len(class_names) != num_outputs:
        raise ValueError(
            f"`class_names` must hold one name per model output "
            f"({num_outputs}). Received: class_names={list(class_names)!r}"
        )
    needs_sigmoid = _sigmoid_of(model) if multi_label else False
    names = None if class_names is None else tf.constant(list(class_names))

    def predict(inputs):
        # `x=`: a positional `(texts, text_pairs)` tuple would be read as
        # `(x, y)`, as keras-hub preprocessors read dataset elements.
        outputs = model(preprocessor(x=inputs), training=False)
        if not multi_label:
            class_ids = tf.argmax(outputs, axis=-1, output_type=tf.int32)
            result = {"outputs": outputs, "class_ids": class_ids}
            if names is not None:
                result["labels"] = tf.gather(names, class_ids)
            return result
        probabilities = tf.sigmoid(outputs) if needs_sigmoid else outputs
        chosen = probabilities > threshold
        result = {
            "outputs": outputs,
            "probabilities": probabilities,
            "predicted": tf.cast(chosen, tf.int32),
        }
        if names is not None:
            every = tf.broadcast_to(names, tf.shape(chosen))
            result["labels"] = tf.ragged.boolean_mask(every, chosen).to_tensor(
                "", shape=[None, num_outputs]
            )
        return result

    text = tf.TensorSpec([None], tf.string, name="texts")
    if pairs:

        def serve(texts, text_pairs):
            return predict((texts, text_pairs))

        signature = [text, tf.TensorSpec([None], tf.string, name="text_pairs")]
    else:

        def serve(texts):
            return predict(texts)

        signature = [text]

    if not preprocessor.built:
        # The export archive only tracks built layers; a preprocessor
        # builds on its first call.
        preprocessor(tf.constant([""]))
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocessor)
    archive.add_endpoint("serve", serve, input_signature=signature)
    archive.write_out(str(filepath), verbose=verbose)


def load_text_classifier(filepath):
    """Loads a SavedModel written by `export_text_classifier` (or by
    `export_tagger` or `export_question_answerer`).

    Imports `tensorflow_text` first so that the tokenizer's ops are
    registered (a plain `tf.saved_model.load` fails without it).

    Args:
        filepath: the exported folder.

    Returns:
        The loaded object; call `.serve(tf.constant([...]))`, or for a
        sentence-pair export `.serve(texts, text_pairs)`. Keep it alive
        while you call it: its functions do not own the variables.

    Example:

    ```python
    classifier = kfinetune.export.load_text_classifier("exported/")
    classifier.serve(tf.constant(["what a great day"]))["labels"]
    ```
    """
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    return tf.saved_model.load(str(filepath))
