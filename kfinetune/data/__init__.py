"""Labelled text data for fine-tuning text classifiers.

`LabelledTexts` holds texts with class labels; its `split` method gives a
`TextClassificationData` whose `train`, `validation` and `test` properties
are `tf.data.Dataset`s of `(text, label)` ready for `model.fit`.

Example:

```python
data = kfinetune.data.tweet_sentiment(classes=2)
model.fit(data.train.batch(32), validation_data=data.validation.batch(32))

texts = kfinetune.data.from_csv("reviews.csv", "review", "label")
data = texts.split(validation=0.1, test=0.1)
```
"""

from kfinetune.data import augment
from kfinetune.data.conll import TaggedSentences
from kfinetune.data.conll import from_conll
from kfinetune.data.curriculum import curriculum
from kfinetune.data.few_shot import few_shot
from kfinetune.data.files import from_csv
from kfinetune.data.files import from_jsonl
from kfinetune.data.labelled_texts import LabelledTexts
from kfinetune.data.labelled_texts import TextClassificationData
from kfinetune.data.mix import mix
from kfinetune.data.replay import replay
from kfinetune.data.squad import QAExample
from kfinetune.data.squad import from_squad
from kfinetune.data.tag_schemes import check_tags
from kfinetune.data.tag_schemes import convert_tags
from kfinetune.data.tag_schemes import tag_constraints
from kfinetune.data.tfds import from_tfds
from kfinetune.data.token_labels import TokenLabels
from kfinetune.data.token_labels import align_tags
from kfinetune.data.tweets import tweet_sentiment

__all__ = [
    "LabelledTexts",
    "QAExample",
    "TaggedSentences",
    "TextClassificationData",
    "TokenLabels",
    "align_tags",
    "augment",
    "check_tags",
    "convert_tags",
    "curriculum",
    "few_shot",
    "from_conll",
    "from_csv",
    "from_jsonl",
    "from_squad",
    "from_tfds",
    "mix",
    "replay",
    "tag_constraints",
    "tweet_sentiment",
]
