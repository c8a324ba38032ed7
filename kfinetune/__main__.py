import os

# Set before TensorFlow is imported, or its C++ start-up chatter is printed.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from kfinetune.cli import main  # noqa: E402

raise SystemExit(main())
