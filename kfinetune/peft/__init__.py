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
from kfinetune.peft.applying import apply
from kfinetune.peft.compiled_functions import reset_compiled_functions
from kfinetune.peft.config import PEFTConfig
from kfinetune.peft.hf import load_hf
from kfinetune.peft.hf import save_hf
from kfinetune.peft.ia3 import IA3Config
from kfinetune.peft.lora import ALL_LINEAR
from kfinetune.peft.lora import LoRAConfig
from kfinetune.peft.merging import merge
from kfinetune.peft.merging import merge_and_unload
from kfinetune.peft.merging import unmerge
from kfinetune.peft.named_adapters import delete
from kfinetune.peft.named_adapters import disable
from kfinetune.peft.named_adapters import set_active
from kfinetune.peft.peft_model import PEFTModel
from kfinetune.peft.prefix import PrefixConfig
from kfinetune.peft.prompt import PromptConfig
from kfinetune.peft.rematerialise import remat
from kfinetune.peft.state import load
from kfinetune.peft.state import save
from kfinetune.peft.summary import summary
from kfinetune.peft.task_heads import task_heads

__all__ = [
    "ALL_LINEAR",
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
    "load_hf",
    "merge",
    "merge_and_unload",
    "remat",
    "reset_compiled_functions",
    "save",
    "save_hf",
    "set_active",
    "summary",
    "task_heads",
    "unmerge",
]
