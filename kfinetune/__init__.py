"""kfinetune: fine-tuning toolkit for Keras 3.

Fine-tuning techniques as ordinary Keras layers, optimizers and callbacks
that drop into `model.fit` code.

Example:

```python
import kfinetune as kft

data = kft.data.tweet_sentiment(classes=2)
model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
```
"""

from kfinetune import active
from kfinetune import callbacks
from kfinetune import data
from kfinetune import distillation
from kfinetune import distribute
from kfinetune import evaluation
from kfinetune import export
from kfinetune import incremental
from kfinetune import inspect
from kfinetune import layers
from kfinetune import multitask
from kfinetune import optimizers
from kfinetune import peft
from kfinetune import plotting
from kfinetune import presets
from kfinetune import qa
from kfinetune import recipes

__version__ = "0.1.0.dev0"

__all__ = [
    "__version__",
    "active",
    "callbacks",
    "data",
    "distillation",
    "distribute",
    "evaluation",
    "export",
    "incremental",
    "inspect",
    "layers",
    "multitask",
    "optimizers",
    "peft",
    "plotting",
    "presets",
    "qa",
    "recipes",
]
