"""Distribution strategies: the right one for the hardware at hand, and
training over several worker processes or machines.

`strategy()` returns a `tf.distribute.TPUStrategy` on a TPU runtime (such
as a Colab TPU), a `tf.distribute.MirroredStrategy` over several GPUs and
the default strategy otherwise, so the same training code runs on all of
them. `multi_worker_strategy()` is a `MultiWorkerMirroredStrategy` that
Keras's `fit` can train with, and fails fast when a worker is missing;
`ChiefBackupAndRestore` resumes an interrupted multi-worker run;
`python -m kfinetune.launch` starts local workers to try it on one
machine.

Example:

```python
import kfinetune as kft

strategy = kft.distribute.strategy()
with strategy.scope():
    model = kft.presets.text_classifier(num_classes=2)
```
"""

from kfinetune.distribute.multi_worker import ChiefBackupAndRestore
from kfinetune.distribute.multi_worker import free_ports
from kfinetune.distribute.multi_worker import is_chief
from kfinetune.distribute.multi_worker import multi_worker_strategy
from kfinetune.distribute.multi_worker import tf_config
from kfinetune.distribute.strategy import strategy

__all__ = [
    "ChiefBackupAndRestore",
    "free_ports",
    "is_chief",
    "multi_worker_strategy",
    "strategy",
    "tf_config",
]
