"""Multi-task learning: one shared backbone, one head per task.

`build` puts a head per task on a keras-hub backbone and returns a plain
Keras model with a dict output keyed by task name; `kfinetune.data.mix`
makes one training dataset from one dataset per task, with the other tasks'
losses masked by sample weights; `evaluate` reports each task's metrics.

Example:

```python
backbone = kfinetune.presets.text_classifier(num_classes=2).backbone
model = kfinetune.multitask.build(backbone, heads={"sentiment": 3, "topic": 5})
train = kfinetune.data.mix({"sentiment": ds1, "topic": ds2}, sampling=2.0)
kfinetune.multitask.check(model, train)
```
"""

from kfinetune.multitask.checking import check
from kfinetune.multitask.heads import Classification
from kfinetune.multitask.heads import Head
from kfinetune.multitask.heads import Regression
from kfinetune.multitask.heads import TokenClassification
from kfinetune.multitask.multitask_model import build
from kfinetune.multitask.report import evaluate

__all__ = [
    "Classification",
    "Head",
    "Regression",
    "TokenClassification",
    "build",
    "check",
    "evaluate",
]
