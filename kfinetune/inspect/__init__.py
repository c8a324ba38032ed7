"""Looking inside a fine-tuned model: attention weights and token
attributions, aligned with the word pieces, as arrays, HTML and PNG.

Example:

```python
import kfinetune as kft

maps = kft.inspect.attention(model, ["what a great day"])
kft.inspect.plot_attention(maps[0], "attention.png")
found = kft.inspect.attributions(model, ["what a great day"])
kft.inspect.plot_attributions(found, "attributions.png")
```
"""

from kfinetune.inspect.attention import AttentionMap
from kfinetune.inspect.attention import attention
from kfinetune.inspect.attention import plot_attention
from kfinetune.inspect.attributions import Attribution
from kfinetune.inspect.attributions import attributions
from kfinetune.inspect.attributions import plot_attributions

__all__ = [
    "AttentionMap",
    "Attribution",
    "attention",
    "attributions",
    "plot_attention",
    "plot_attributions",
]
