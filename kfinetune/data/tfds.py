"""`from_tfds`: labelled texts from a TensorFlow Datasets data set."""

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from kfinetune.data.labelled_texts import LabelledTexts
from kfinetune.data.labelled_texts import infer_class_names


def _decode(value, where, key):
    if isinstance(value, np.integer):
        return str(value)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = value[error.start : error.end]
        raise ValueError(
            f"{where}: feature {key!r} has bytes that are not valid UTF-8 "
            f"at byte {error.start}. Received: {bad!r}"
        ) from None


def from_tfds(
    name,
    split="train",
    text_key="text",
    label_key="label",
    data_dir=None,
    download=True,
):
    """Reads labelled texts from a TensorFlow Datasets data set.

    Loads the split with `tfds.load` and reads it into memory. With a
    `tfds.features.ClassLabel` label the class names are its `names`;
    otherwise they are inferred as in `from_csv`: the sorted unique labels,
    sorted numerically when every label is an integer.

    Args:
        name: the registered data set name, e.g. `"imdb_reviews"`.
        split: one split, e.g. `"train"` or `"test[:10%]"`. Defaults to
            `"train"`.
        text_key: the feature holding the text, a scalar string. Defaults
            to `"text"`.
        label_key: the feature holding the label, a scalar integer or
            string. Defaults to `"label"`.
        data_dir: where TensorFlow Datasets keeps its data; `None` uses
            its default. Defaults to `None`.
        download: whether `tfds.load` may download and prepare the data
            set when `data_dir` does not hold it. Defaults to `True`.

    Returns:
        A `LabelledTexts` whose `source` is `"tfds:{name}/{split}"`.

    Raises:
        ValueError: if `split` is not a single split, a key is not a
            scalar feature of the data set, or a text is not valid UTF-8.

    Example:

    ```python
    texts = kfinetune.data.from_tfds("imdb_reviews", split="train")
    data = texts.split(validation=0.1, test=0.1)
    ```
    """
    if not isinstance(split, str):
        raise ValueError(
            "`split` must be a single split such as 'train' or "
            f"'train[:10%]'. Received: split={split!r}"
        )
    dataset, info = tfds.load(
        name,
        split=split,
        data_dir=data_dir,
        download=download,
        with_info=True,
    )
    features = info.features
    for argument, key, dtypes in (
        ("text_key", text_key, (tf.string,)),
        ("label_key", label_key, (tf.string, tf.int32, tf.int64)),
    ):
        if key not in features:
            raise ValueError(
                f"Data set {name!r} has no feature {key!r}. Available "
                f"features: {list(features.keys())}. "
                f"Received: {argument}={key!r}"
            )
        feature = features[key]
        if feature.shape != () or feature.tf_dtype not in dtypes:
            raise ValueError(
                f"Feature {key!r} of data set {name!r} must be a scalar of "
                f"type {[dtype.name for dtype in dtypes]}; it has shape "
                f"{feature.shape} and type {feature.tf_dtype.name}. "
                f"Received: {argument}={key!r}"
            )
    class_label = isinstance(features[label_key], tfds.features.ClassLabel)
    pairs = dataset.map(lambda example: (example[text_key], example[label_key]))
    texts, labels = [], []
    for index, (text, label) in enumerate(tfds.as_numpy(pairs)):
        where = f"Example {index} of split {split!r} of data set {name!r}"
        texts.append(_decode(text, where, text_key))
        labels.append(
            label if class_label else _decode(label, where, label_key)
        )
    if class_label:
        class_names = tuple(features[label_key].names)
    else:
        class_names = infer_class_names(labels)
        positions = {label: i for i, label in enumerate(class_names)}
        labels = [positions[label] for label in labels]
    return LabelledTexts(
        texts, labels, class_names, source=f"tfds:{name}/{split}"
    )
