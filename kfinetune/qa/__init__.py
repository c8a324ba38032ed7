"""Extractive question answering: features, model, answers and scores.

`prepare_features` turns `kfinetune.data.QAExample`s (from
`kfinetune.data.from_squad`) into windows of BERT inputs with the answer's
token span; `question_answerer` puts a span head on a backbone;
`postprocess` turns its start / end logits back into answer texts;
`squad_scores` computes exact match and F1 as the official SQuAD script
(`squad_scores_by_kind` also for answerable and unanswerable questions
apart), and `plot_scores` draws them.

Example:

```python
examples = kfinetune.data.from_squad("train.json")
features = kfinetune.qa.prepare_features(examples, tokenizer)
model = kfinetune.presets.question_answerer()
model.fit(features.dataset().batch(16))
out = model.predict(features.inputs())
answers = kfinetune.qa.postprocess(features, out["start"], out["end"])
kfinetune.qa.squad_scores(answers, examples)
```
"""

from kfinetune.qa.features import QAFeatures
from kfinetune.qa.features import prepare_features
from kfinetune.qa.metrics import exact_match
from kfinetune.qa.metrics import f1_score
from kfinetune.qa.metrics import normalize_answer
from kfinetune.qa.metrics import squad_scores
from kfinetune.qa.metrics import squad_scores_by_kind
from kfinetune.qa.model import question_answerer
from kfinetune.qa.plot import plot_scores
from kfinetune.qa.postprocess import postprocess

__all__ = [
    "QAFeatures",
    "exact_match",
    "f1_score",
    "normalize_answer",
    "plot_scores",
    "postprocess",
    "prepare_features",
    "question_answerer",
    "squad_scores",
    "squad_scores_by_kind",
]
