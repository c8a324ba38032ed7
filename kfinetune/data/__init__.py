"""Data for fine-tuning: labelled texts for classifiers, and prompts,
chats and text pairs for generators.

`LabelledTexts` holds texts (or sentence pairs) with class labels (one a
text, or any number with multi-label data); its `split` method gives a
`TextClassificationData` whose `train`, `validation` and `test` properties
are `tf.data.Dataset`s of `(text, label)` ready for `model.fit`.

For generative models, `instructions` turns prompts and responses, or
chats, into causal LM rows whose loss is on the responses only, and
`seq2seq` turns source and target texts into encoder-decoder rows;
`from_generation_jsonl` reads either from JSON Lines.

Example:

```python
data = kfinetune.data.tweet_sentiment(classes=2)
model.fit(data.train.batch(32), validation_data=data.validation.batch(32))

texts = kfinetune.data.from_csv("reviews.csv", "review", "label")
data = texts.split(validation=0.1, test=0.1)

examples = kfinetune.data.from_generation_jsonl("chats.jsonl")
data = kfinetune.data.instructions(examples, tokenizer, sequence_length=256)
causal_lm.fit(data.dataset().shuffle(1000).batch(8))
```
"""

from kfinetune.data import augment
from kfinetune.data.chat import CHAT_TEMPLATE
from kfinetune.data.conll import TaggedSentences
from kfinetune.data.conll import from_conll
from kfinetune.data.curriculum import curriculum
from kfinetune.data.few_shot import few_shot
from kfinetune.data.files import from_csv
from kfinetune.data.files import from_jsonl
from kfinetune.data.instructions import CausalLMData
from kfinetune.data.instructions import instructions
from kfinetune.data.jsonl import from_generation_jsonl
from kfinetune.data.labelled_texts import LabelledTexts
from kfinetune.data.labelled_texts import TextClassificationData
from kfinetune.data.mix import mix
from kfinetune.data.replay import replay
from kfinetune.data.seq2seq import Seq2SeqLMData
from kfinetune.data.seq2seq import seq2seq
from kfinetune.data.squad import QAExample
from kfinetune.data.squad import from_squad
from kfinetune.data.tag_schemes import check_tags
from kfinetune.data.tag_schemes import convert_tags
from kfinetune.data.tag_schemes import tag_constraints
from kfinetune.data.tfds import from_tfds
from kfinetune.data.token_labels import TokenLabels
from kfinetune.data.token_labels import align_tags
from kfinetune.data.truncation import TruncationReport
from kfinetune.data.tweet_questions import tweet_questions
from kfinetune.data.tweet_tags import tweet_tagging
from kfinetune.data.tweets import tweet_sentiment

__all__ = [
    "CHAT_TEMPLATE",
    "CausalLMData",
    "LabelledTexts",
    "QAExample",
    "Seq2SeqLMData",
    "TaggedSentences",
    "TextClassificationData",
    "TokenLabels",
    "TruncationReport",
    "align_tags",
    "augment",
    "check_tags",
    "convert_tags",
    "curriculum",
    "few_shot",
    "from_conll",
    "from_csv",
    "from_generation_jsonl",
    "from_jsonl",
    "from_squad",
    "from_tfds",
    "instructions",
    "mix",
    "replay",
    "seq2seq",
    "tag_constraints",
    "tweet_questions",
    "tweet_sentiment",
    "tweet_tagging",
]
