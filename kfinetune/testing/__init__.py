"""Test utilities: small keras-hub models and round-trip checks.

Later features reuse these so that every one is tested the same way: through
`model.predict`, across `.keras` save/load, SavedModel export, XLA,
`MirroredStrategy` and mixed precision.
"""

from kfinetune.compiling import compile_and_build
from kfinetune.testing.atomicity import assert_model_unchanged
from kfinetune.testing.atomicity import model_state
from kfinetune.testing.encoders import FAMILY_NAMES
from kfinetune.testing.encoders import small_backbone
from kfinetune.testing.encoders import small_tokenizer
from kfinetune.testing.generation import greedy_decoding
from kfinetune.testing.models import CAUSAL_LM_FAMILIES
from kfinetune.testing.models import VOCABULARY
from kfinetune.testing.models import save_small_bert_preset
from kfinetune.testing.models import save_small_generator_preset
from kfinetune.testing.models import small_bert_backbone
from kfinetune.testing.models import small_bert_classifier
from kfinetune.testing.models import small_bert_inputs
from kfinetune.testing.models import small_bert_preprocessor
from kfinetune.testing.models import small_causal_lm
from kfinetune.testing.models import small_gpt2_causal_lm
from kfinetune.testing.models import small_gpt2_inputs
from kfinetune.testing.models import small_seq2seq_inputs
from kfinetune.testing.models import small_seq2seq_lm
from kfinetune.testing.round_trips import BFLOAT16_TOLERANCE
from kfinetune.testing.round_trips import FLOAT32_TOLERANCE
from kfinetune.testing.round_trips import assert_bfloat16_close
from kfinetune.testing.round_trips import assert_config_round_trip
from kfinetune.testing.round_trips import assert_jit_compile_consistent
from kfinetune.testing.round_trips import assert_keras_round_trip
from kfinetune.testing.round_trips import assert_mirrored_consistent
from kfinetune.testing.round_trips import assert_outputs_close
from kfinetune.testing.round_trips import assert_saved_model_round_trip
from kfinetune.testing.round_trips import dtype_policy
from kfinetune.testing.round_trips import fit_and_predict
from kfinetune.testing.round_trips import predict
from kfinetune.testing.round_trips import two_cpu_strategy

__all__ = [
    "BFLOAT16_TOLERANCE",
    "CAUSAL_LM_FAMILIES",
    "FAMILY_NAMES",
    "FLOAT32_TOLERANCE",
    "VOCABULARY",
    "assert_bfloat16_close",
    "assert_config_round_trip",
    "assert_jit_compile_consistent",
    "assert_keras_round_trip",
    "assert_model_unchanged",
    "assert_mirrored_consistent",
    "assert_outputs_close",
    "assert_saved_model_round_trip",
    "compile_and_build",
    "dtype_policy",
    "fit_and_predict",
    "greedy_decoding",
    "model_state",
    "predict",
    "small_backbone",
    "small_bert_backbone",
    "small_bert_classifier",
    "small_bert_inputs",
    "save_small_bert_preset",
    "save_small_generator_preset",
    "small_bert_preprocessor",
    "small_causal_lm",
    "small_gpt2_causal_lm",
    "small_gpt2_inputs",
    "small_seq2seq_inputs",
    "small_seq2seq_lm",
    "small_tokenizer",
    "two_cpu_strategy",
]
