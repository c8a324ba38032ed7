"""Benchmarks of kfinetune: step time, peak memory and quality.

Run each as a module from the repository root, e.g.
`python -m benchmarks.step_time`; `python -m benchmarks` runs step time,
memory and the report (`make bench`). Method and results:
`docs/benchmarks.md`.
"""

import os

# Set here because the package runs before any of its modules import
# TensorFlow. The workloads are defined on the TensorFlow backend.
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
