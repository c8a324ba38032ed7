"""Parameter-efficient fine-tuning: LoRA, bottleneck adapters, IA3, prefix
and prompt tuning, applied to any built Keras model by target pattern.

Example:

```python
import kfinetune as kft

model = kft.presets.text_classifier(num_classes=2)
model = kft.peft.apply(model, kft.peft.LoRAConfig(rank=8, alpha=16))
kft.peft.summary(model)
model.compile(...)
model.fit(...)
kft.peft.save(model, "task.adapter.h5")
```
"""

from kfinetune.peft.adapter import AdapterConfig
from kfinetune.peft.config import PEFTConfig
from kfinetune.peft.engine import apply
from kfinetune.peft.engine import delete
from kfinetune.peft.engine import disable
from kfinetune.peft.engine import merge
from kfinetune.peft.engine import reset_compiled_functions
from kfinetune.peft.engine import set_active
from kfinetune.peft.engine import unmerge
from kfinetune.peft.ia3 import IA3Config
from kfinetune.peft.lora import LoRAConfig
from kfinetune.peft.peft_model import PEFTModel
from kfinetune.peft.prefix import PrefixConfig
from kfinetune.peft.prompt import PromptConfig
from kfinetune.peft.state import load
from kfinetune.peft.state import save
from kfinetune.peft.summary import summary

__all__ = [
    "AdapterConfig",
    "IA3Config",
    "LoRAConfig",
    "PEFTConfig",
    "PEFTModel",
    "PrefixConfig",
    "PromptConfig",
    "apply",
    "delete",
    "disable",
    "load",
    "merge",
    "reset_compiled_functions",
    "save",
    "set_active",
    "summary",
    "unmerge",
]
