"""Fine-tuning layers for people writing their own models."""

from kfinetune.layers.adapter import Adapter
from kfinetune.layers.adapter_wrapper import AdapterWrapper
from kfinetune.layers.adapter_wrapper import ParallelAdapterTap
from kfinetune.layers.ia3 import IA3
from kfinetune.layers.lora import LoRA
from kfinetune.layers.prefix_attention import PrefixAttention
from kfinetune.layers.prompt_embedding import PromptEmbedding

__all__ = [
    "Adapter",
    "AdapterWrapper",
    "IA3",
    "LoRA",
    "ParallelAdapterTap",
    "PrefixAttention",
    "PromptEmbedding",
]
