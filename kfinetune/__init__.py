"""kfinetune: fine-tuning toolkit for Keras 3.

Fine-tuning techniques as ordinary Keras layers, optimizers and callbacks
that drop into `model.fit` code.

`import kfinetune` imports every subpackage, so every kfinetune class is
registered with Keras and a saved `.keras` file that holds one loads with
`keras.models.load_model`. The command line (`python -m kfinetune` and
the `kfinetune` command) is the one exception: it checks its options
before TensorFlow starts, so a bad flag is answered at once. While Python
locates a `-m` module it sets `sys.argv[0]` to `"-m"`, and the `kfinetune`
command's script is named `kfinetune`; then the package imports its
subpackages on first use instead (a module-level `__getattr__`).

Example:

```python
import kfinetune as kft

data = kft.data.tweet_sentiment(classes=2)
model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
```
"""

import importlib
import os
import sys

__version__ = "0.1.0.dev0"

_SUBPACKAGES = (
    "active",
    "callbacks",
    "data",
    "distillation",
    "distribute",
    "encoders",
    "evaluation",
    "export",
    "incremental",
    "inspect",
    "layers",
    "multitask",
    "optimizers",
    "peft",
    "plotting",
    "preprocessing",
    "presets",
    "qa",
    "recipes",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_SUBPACKAGES})


def _started_as_command_line():
    first = getattr(sys, "argv", [])[:1]
    if first == ["-m"]:
        return True
    # The `kfinetune` script pip writes (`kfinetune.exe` on Windows).
    name = os.path.basename(first[0]) if first else ""
    return name.lower() in ("kfinetune", "kfinetune.exe", "kfinetune-script.py")


if not _started_as_command_line():
    for _name in _SUBPACKAGES:
        importlib.import_module(f"{__name__}.{_name}")
    del _name
