"""`export_text_classifier`: a keras-hub text classifier as a SavedModel
that reads raw text, and `load_text_classifier`, which loads any of
kfinetune's text SavedModels."""

import keras
import tensorflow as tf


def export_text_classifier(model, filepath, class_names=None, verbose=True):
    """Exports a text classifier with its preprocessor as a SavedModel.

    The SavedModel's `serve` endpoint (also its `serving_default`
    signature) takes a 1-D `tf.string` tensor of texts and returns a dict:
    `outputs` (what `model.predict` returns for those texts: logits unless
    the model has an activation), `class_ids` (the arg-max) and, when
    `class_names` are given, `labels` (the class names as strings).

    The tokenizer uses TensorFlow Text ops: load the SavedModel with
    `load_text_classifier`, which registers them first.

    Args:
        model: a built keras-hub `TextClassifier` with a `preprocessor`.
        filepath: the folder to write.
        class_names: optional class names, one per model output.
        verbose: print the endpoint summary. Defaults to `True`.

    Raises:
        ValueError: the model has no preprocessor, or `class_names` does not
            match the number of outputs.

    Example:

    ```python
    model = kfinetune.presets.text_classifier(num_classes=2)
    kfinetune.export.export_text_classifier(
        model, "exported/", class_names=["negative", "positive"])
    reloaded = kfinetune.export.load_text_classifier("exported/")
    reloaded.serve(tf.constant(["what a great day"]))["labels"]
    ```
    """
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
    names = None if class_names is None else tf.constant(list(class_names))

    def serve(texts):
        outputs = model(preprocessor(texts), training=False)
        class_ids = tf.argmax(outputs, axis=-1, output_type=tf.int32)
        result = {"outputs": outputs, "class_ids": class_ids}
        if names is not None:
            result["labels"] = tf.gather(names, class_ids)
        return result

    if not preprocessor.built:
        # The export archive only tracks built layers; a preprocessor
        # builds on its first call.
        preprocessor(tf.constant([""]))
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.track(preprocessor)
    archive.add_endpoint(
        "serve", serve, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    archive.write_out(str(filepath), verbose=verbose)


def load_text_classifier(filepath):
    """Loads a SavedModel written by `export_text_classifier`.

    Imports `tensorflow_text` first so that the tokenizer's ops are
    registered (a plain `tf.saved_model.load` fails without it).

    Args:
        filepath: the exported folder.

    Returns:
        The loaded object; call `.serve(tf.constant([...]))`.
    """
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops)

    return tf.saved_model.load(str(filepath))
