"""Test configuration shared by every test.

TensorFlow can split the CPU into logical devices only before it initialises,
so this runs first: two logical CPUs let `MirroredStrategy` tests run on a
one-CPU machine. Tests that need one create the strategy themselves
(`kfinetune.testing.two_cpu_strategy`).
"""

import gc
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Nothing in the tests may touch the network: they must pass offline and
# never wait on a download.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TFDS_DISABLE_GCS"] = "1"

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)


@pytest.fixture(autouse=True, scope="module")
def collect_and_freeze_after_each_module():
    """Keeps Python's garbage collector from slowing later tests down.

    Tests build and trace many Keras models, and TensorFlow keeps some
    traced graphs alive for the life of the process (seen: with
    `global_clipnorm`, every `fit` of a small BERT left about 45,000 Python
    objects that `gc.collect()` could not free; the 60 tests of the
    layer-wise optimizer took the process from 0.45 to 2.15 million
    objects). Each full collection walks every live object, so late in a
    run it takes seconds, and Keras runs one whenever a layer deletes a
    variable (`quantize`) or `clear_session` is called. After each test
    file this collects what that file left (its module fixtures are gone by
    then) and moves everything still alive out of the collector's way
    (`gc.freeze`): later collections walk only what later files create.
    """
    yield
    gc.collect()
    gc.freeze()


# The test files that take longest, slowest first (seconds of one pytest-xdist
# worker, measured on the two-core machine; docs/testing.md). Each file runs
# in one worker (`--dist loadfile`) and the workers take files in collection
# order (`--no-loadscope-reorder`): starting with the longest files and
# ending with short ones keeps both workers busy until the end, instead of
# one worker finishing a long file alone. Update the list when a file's time
# changes much; a file missing from it only runs later.
SLOWEST_FILES_FIRST = (
    "tests/optimizers/test_layerwise_optimizer.py",  # 173
    "tests/peft/test_encoder_families.py",  # 147
    "tests/test_cli_commands.py",  # 134
    "tests/test_token_classifier.py",  # 109
    "tests/callbacks/test_gradual_unfreezing.py",  # 107
    "tests/distribute/test_multi_worker.py",  # 99
    "tests/test_domain_adapt.py",  # 92
    "tests/test_active.py",  # 91
    "tests/peft/test_minilm.py",  # 87
    "tests/test_distillation.py",  # 82
    "tests/peft/test_model_kinds.py",  # 81
    "tests/test_cli_pairs_and_multi_label.py",  # 72
    "tests/layers/test_crf.py",  # 70
    "tests/test_cli_tasks.py",  # 70
    "tests/optimizers/test_schedules.py",  # 60
    "tests/test_encoder_families_tasks.py",  # 58
    "tests/test_incremental.py",  # 57
    "tests/peft/test_prompt.py",  # 56
    "tests/peft/test_remat.py",  # 56
    "tests/peft/test_apply.py",  # 56
    "tests/peft/test_prefix.py",  # 55
    "tests/test_multitask.py",  # 52
    "tests/test_few_shot.py",  # 52
    "tests/test_cli_generators.py",  # 48
    "tests/test_cli_training.py",  # 47
    "tests/test_cli.py",  # 46
    "tests/test_colab_notebook.py",  # 45
    "tests/qa/test_question_answerer.py",  # 44
    "tests/peft/test_generators.py",  # 41
    "tests/peft/test_decoder_prefix_prompt.py",  # 32
    "tests/peft/test_ia3.py",  # 29
    "tests/peft/test_lora_variants.py",  # 29
    "tests/peft/test_hf.py",  # 28
    "tests/test_export.py",  # 26
    "tests/test_generator_training_control.py",  # 25
    "tests/test_augment.py",  # 23
    "tests/peft/test_qlora.py",  # 23
    "tests/test_inspect.py",  # 22
    "tests/callbacks/test_adaptive_fine_tuning.py",  # 21
)


def pytest_collection_modifyitems(config, items):
    """Orders the test files as `SLOWEST_FILES_FIRST` says (a stable sort:
    the tests of each file keep their order)."""
    rank = {path: i for i, path in enumerate(SLOWEST_FILES_FIRST)}

    def file_rank(item):
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(rank))

    items.sort(key=file_rank)
