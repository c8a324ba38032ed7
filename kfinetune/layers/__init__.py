"""Fine-tuning layers for people writing their own models."""

from kfinetune.layers.adapter import Adapter
from kfinetune.layers.adapter_wrapper import AdapterWrapper
from kfinetune.layers.adapter_wrapper import ParallelAdapterTap
from kfinetune.layers.crf import CRF
from kfinetune.layers.crf import CRFLoss
from kfinetune.layers.crf_tagger import CRFTagger
from kfinetune.layers.ia3 import IA3
from kfinetune.layers.lora import LoRA
from kfinetune.layers.mixup import Mixup
from kfinetune.layers.mixup import MixupLoss
from kfinetune.layers.prefix_attention import PrefixAttention
from kfinetune.layers.prompt_embedding import PromptEmbedding
from kfinetune.layers.span_head import SpanHead

__all__ = [
    "Adapter",
    "AdapterWrapper",
    "CRF",
    "CRFLoss",
    "CRFTagger",
    "IA3",
    "LoRA",
    "Mixup",
    "MixupLoss",
    "ParallelAdapterTap",
    "PrefixAttention",
    "PromptEmbedding",
    "SpanHead",
]
