"""Knowledge distillation: train a small student to imitate a fine-tuned
teacher, from labelled or unlabelled data.

Example:

```python
import kfinetune as kft

student = kft.presets.shrink(teacher, layers=[0, 2, 4])
distiller = kft.distillation.Distiller(teacher, student, temperature=2.0)
distiller.compile(optimizer=keras.optimizers.AdamW(5e-5))
distiller.fit(data.train.batch(32).map(distiller.preprocessor))
distiller.student.save("student.keras")
```
"""

from kfinetune.distillation.distiller import Distiller
from kfinetune.distillation.losses import hidden_state_loss
from kfinetune.distillation.losses import soft_target_loss
from kfinetune.distillation.shrink import shrink

__all__ = [
    "Distiller",
    "hidden_state_loss",
    "shrink",
    "soft_target_loss",
]
