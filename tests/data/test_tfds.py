import re

import numpy as np
import pytest
import tensorflow_datasets as tfds

from kfinetune.data import from_tfds

# tfds registers builders by the snake_case class name, process-wide: the
# names carry a prefix no real data set uses.
CLASS_LABEL_NAME = "kfinetune_test_class_label_texts"
STRING_LABEL_NAME = "kfinetune_test_string_label_texts"

TRAIN = [("great", 1), ("awful", 0), ("fine", 1), ("bad", 0), ("ok", 1)]


class LocalBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """A builder that downloads nothing, so it has no checksums file.

    tfds looks for checksums next to the module that defines the builder;
    for a module inside a package, as pytest imports this one, that look-up
    needs `importlib_resources`, which not every environment has.
    """

    VERSION = tfds.core.Version("1.0.0")
    code_path = None


class KfinetuneTestClassLabelTexts(LocalBuilder):
    """Texts with a `ClassLabel`, a non-scalar and a non-text feature."""

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "text": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(names=["neg", "pos"]),
                    "tokens": tfds.features.Sequence(tfds.features.Text()),
                    "score": tfds.features.Scalar(dtype=np.float32),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(TRAIN),
            "broken": self._generate_examples([(b"caf\xe9!", 0), ("ok", 1)]),
        }

    def _generate_examples(self, pairs):
        for key, (text, label) in enumerate(pairs):
            yield (
                key,
                {"text": text, "label": label, "tokens": [], "score": 0.5},
            )


class KfinetuneTestStringLabelTexts(LocalBuilder):
    """Texts whose labels are strings, not a `ClassLabel`."""

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "body": tfds.features.Text(),
                    "stars": tfds.features.Text(),
                    "rating": tfds.features.Scalar(dtype=np.int64),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for key, stars in enumerate(["10", "2", "1", "2"]):
            yield (
                key,
                {"body": f"review {key}", "stars": stars, "rating": int(stars)},
            )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tfds")
    for builder in (
        KfinetuneTestClassLabelTexts,
        KfinetuneTestStringLabelTexts,
    ):
        builder(data_dir=str(path)).download_and_prepare()
    return path


def load(name, data_dir, **kwargs):
    return from_tfds(name, data_dir=data_dir, download=False, **kwargs)


def test_reads_texts_and_class_label_names(data_dir):
    texts = load(CLASS_LABEL_NAME, data_dir)
    assert texts.class_names == ("neg", "pos")
    assert len(texts) == len(TRAIN)
    assert sorted(
        zip(texts.texts.tolist(), texts.labels.tolist(), strict=True)
    ) == sorted(TRAIN)
    assert texts.source == f"tfds:{CLASS_LABEL_NAME}/train"


def test_split_slices_are_passed_to_tfds(data_dir):
    texts = load(CLASS_LABEL_NAME, data_dir, split="train[:2]")
    assert len(texts) == 2
    assert texts.source == f"tfds:{CLASS_LABEL_NAME}/train[:2]"


@pytest.mark.parametrize("label_key", ["stars", "rating"])
def test_infers_classes_of_other_labels_numerically(data_dir, label_key):
    texts = load(
        STRING_LABEL_NAME, data_dir, text_key="body", label_key=label_key
    )
    assert texts.class_names == ("1", "2", "10")
    stars = dict(zip(texts.texts, texts.labels, strict=True))
    assert stars == {"review 0": 2, "review 1": 1, "review 2": 0, "review 3": 1}


def test_missing_key_lists_the_features(data_dir):
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Data set '{CLASS_LABEL_NAME}' has no feature 'review'. "
            "Available features: ['text', 'label', 'tokens', 'score']. "
            "Received: text_key='review'"
        ),
    ):
        load(CLASS_LABEL_NAME, data_dir, text_key="review")
    with pytest.raises(ValueError, match="Received: label_key='sentiment'"):
        load(CLASS_LABEL_NAME, data_dir, label_key="sentiment")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"text_key": "tokens"},
            r"Feature 'tokens'.*shape \(None,\).*Received: text_key='tokens'",
        ),
        (
            {"label_key": "score"},
            r"Feature 'score'.*type float32. Received: label_key='score'",
        ),
        (
            {"split": ["train", "broken"]},
            r"single split.*Received: split=\['train', 'broken'\]",
        ),
    ],
)
def test_rejects_unusable_features_and_splits(data_dir, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load(CLASS_LABEL_NAME, data_dir, **kwargs)


def test_undecodable_text_names_data_set_split_and_example(data_dir):
    dataset = tfds.load(
        CLASS_LABEL_NAME, split="broken", data_dir=data_dir, download=False
    )
    texts = [example["text"] for example in tfds.as_numpy(dataset)]
    index = texts.index(b"caf\xe9!")
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"Example {index} of split 'broken' of data set "
            f"'{CLASS_LABEL_NAME}': feature 'text' has bytes that are not "
            "valid UTF-8 at byte 3. Received: b'\\xe9'"
        ),
    ):
        load(CLASS_LABEL_NAME, data_dir, split="broken")
