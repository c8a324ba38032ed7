"""Incremental fine-tuning: new data or new classes after a fine-tune.

Against forgetting the old task: `anchor` pulls the weights toward their
previous values (L2-SP) or, weighted by the old task's `fisher`
information, elastic weight consolidation (EWC), inside plain `fit`;
`kfinetune.data.replay` mixes old examples into the new data; `grow_head`
adds classes to a classifier and keeps the old classes' logits.

Example:

```python
import kfinetune as kft

model = kft.incremental.grow_head(binary_model, num_classes=3)
old_fisher = kft.incremental.fisher(model, old.batch(1).take(500))
kft.incremental.anchor(model, 100.0, "ewc", fisher=old_fisher)
model.compile(optimizer="adamw", loss=loss, jit_compile=True)
model.fit(kft.data.replay(new, old, ratio=0.3, seed=0).batch(32))
```
"""

from kfinetune.incremental.anchor import anchor
from kfinetune.incremental.anchor import release
from kfinetune.incremental.fisher import fisher
from kfinetune.incremental.grow import grow_head
from kfinetune.incremental.regularizers import EWC
from kfinetune.incremental.regularizers import L2SP
from kfinetune.incremental.snapshot import snapshot

__all__ = [
    "EWC",
    "L2SP",
    "anchor",
    "fisher",
    "grow_head",
    "release",
    "snapshot",
]
