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


@pytest.fixture(scope="module")
def frozen_earlier_objects():
    """Keeps `gc.collect()` cheap in a module that triggers it often.

    Keras collects garbage whenever a layer deletes a variable (`quantize`
    deletes every float kernel) and in `clear_session`. Late in a full test
    session each collection walks every object the earlier tests left,
    seconds per call. `gc.freeze` moves those objects out of the
    collector's way for this module; `gc.unfreeze` hands them back after
    it, so any garbage among them is still collected later.
    """
    gc.freeze()
    yield
    gc.unfreeze()
