"""Text augmentation as `tf.data` maps, seeded and label-preserving.

Each function returns an `Augmentation`: pass it to `tf.data.Dataset.map`
over a dataset of texts or `(text, label)` pairs (the word edits and
`from_function`) or of preprocessed `(features, label)` pairs (the token
edits). It runs in the input pipeline on the host, with TensorFlow string
ops, and never changes the label. The same seed gives the same augmented
stream; each epoch sees new augmentations.

Example:

```python
import kfinetune as kft

data = kft.data.tweet_sentiment(classes=2)
swap = kft.data.augment.random_swap(rate=0.1, seed=0)
model.fit(data.train.map(swap).batch(32), epochs=3)
```
"""

from kfinetune.data.augment.augmentation import Augmentation
from kfinetune.data.augment.function import from_function
from kfinetune.data.augment.synonym_edits import random_insertion
from kfinetune.data.augment.synonym_edits import synonym_replacement
from kfinetune.data.augment.synonyms import STOP_WORDS
from kfinetune.data.augment.synonyms import SynonymTable
from kfinetune.data.augment.synonyms import embedding_synonyms
from kfinetune.data.augment.token_edits import span_cutoff
from kfinetune.data.augment.token_edits import token_masking
from kfinetune.data.augment.word_edits import random_deletion
from kfinetune.data.augment.word_edits import random_swap

__all__ = [
    "STOP_WORDS",
    "Augmentation",
    "SynonymTable",
    "embedding_synonyms",
    "from_function",
    "random_deletion",
    "random_insertion",
    "random_swap",
    "span_cutoff",
    "synonym_replacement",
    "token_masking",
]
