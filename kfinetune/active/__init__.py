"""Active learning: pick the unlabelled examples worth labelling.

`query` scores a pool of unlabelled texts with a trained classifier
(uncertainty, BALD with Monte-Carlo dropout, or k-center diversity on the
backbone's embeddings) and returns the best `n`; `simulate` runs the whole
loop on a labelled pool whose labels it hides, and records the learning
curve (labels → test accuracy).

Example:

```python
result = kfinetune.active.query(model, texts, n=50, strategy="entropy")
curve = kfinetune.active.simulate(build, data.splits["train"], data.test)
```
"""

from kfinetune.active.kcenter import kcenter_greedy
from kfinetune.active.query import QueryResult
from kfinetune.active.query import query
from kfinetune.active.simulate import LearningCurve
from kfinetune.active.simulate import save_learning_curves
from kfinetune.active.simulate import simulate
from kfinetune.active.strategies import STRATEGIES

__all__ = [
    "STRATEGIES",
    "LearningCurve",
    "QueryResult",
    "kcenter_greedy",
    "query",
    "save_learning_curves",
    "simulate",
]
