"""`strategy()`: the distribution strategy for the hardware at hand."""

import os
import socket
import urllib.parse

import tensorflow as tf

from kfinetune import checks

# Environment variables through which a runtime names a TPU reached over
# the network. `TPUClusterResolver()` reads the last three itself.
COLAB_TPU_ADDRESS = "COLAB_TPU_ADDR"
TPU_NAME_VARIABLES = (
    "TPU_NAME",
    "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS",
    "TPU_CONFIG",
)

# What `TPUClusterResolver` and `initialize_tpu_system` raise when there is
# no TPU: `ValueError` ("Please provide a TPU Name"), `NotFoundError` ("TPUs
# not found in the cluster") and the other `OpError`s of a failed
# connection, `RuntimeError` (a TPU that is not ready), and `OSError` (the
# metadata server of a Cloud VM, or the TPU worker, cannot be reached).
_NO_TPU_ERRORS = (
    ValueError,
    RuntimeError,
    OSError,
    tf.errors.OpError,
)

# HTTP/2's client connection preface, an empty SETTINGS frame, and the
# SETTINGS frame type (RFC 9113, sections 3.4 and 6.5).
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HTTP2_EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_HTTP2_SETTINGS = 0x04

# One strategy per `tpu` argument: a TPU system is initialised once per
# process (initialising it again would wipe the TPU's memory, and with it
# the variables already placed there).
_STRATEGIES = {}


def strategy(tpu=None, timeout=30, verbose=1):
    """Returns the distribution strategy for the hardware at hand.

    - A TPU (a Colab or Kaggle TPU runtime, a Cloud TPU VM or a TPU named by
      `tpu` or by the `TPU_NAME` environment variable): connects to it,
      initialises the TPU system and returns a `tf.distribute.TPUStrategy`
      over all its cores.
    - Otherwise, several GPUs: a `tf.distribute.MirroredStrategy` over all
      of them.
    - Otherwise (CPU, or one GPU): the default strategy
      (`tf.distribute.get_strategy()`), which runs on the one device.

    The result is kept: later calls with the same `tpu` return the same
    strategy object without connecting or initialising again (initialising a
    TPU twice would erase what is already on it). Create the model, the
    optimizer and the metrics inside `strategy().scope()`; `model.fit`
    then distributes each batch over the replicas.

    Without `tpu`, a TPU is looked for in this order: the legacy Colab TPU
    address (`COLAB_TPU_ADDR`), a TPU named by the environment (`TPU_NAME`,
    `KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS`, `TPU_CONFIG`), a TPU attached to
    this machine (`tpu="local"`); when none answers, the GPU and CPU cases
    follow. With `tpu`, a TPU is required: when it cannot be reached, a
    `ValueError` is raised instead of falling back.

    Args:
        tpu: `None` to detect; `"local"` for a TPU attached to this machine
            (TPU VMs); a `"grpc://host:port"` address; or a Cloud TPU name.
            Defaults to `None`.
        timeout: seconds to wait for the TPU worker's address to answer
            before giving up (a TPU reached over the network); without it
            TensorFlow's connection would retry for many minutes. Defaults to
            `30`.
        verbose: `1` prints which strategy was chosen and its number of
            replicas (on the call that chooses it), `0` is silent. Defaults
            to `1`.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        ValueError: `tpu` was given and no TPU could be reached there, or an
            argument is invalid.

    Example:

    ```python
    strategy = kfinetune.distribute.strategy()
    with strategy.scope():
        model = kfinetune.presets.text_classifier(num_classes=2)
        model.compile(optimizer="adamw", loss=..., jit_compile=True)
    batch_size = 16 * strategy.num_replicas_in_sync
    ```
    """
    if tpu is not None and (not isinstance(tpu, str) or not tpu):
        raise ValueError(
            '`tpu` must be `None`, `"local"`, a "grpc://host:port" address or '
            f"a Cloud TPU name. Received: tpu={tpu!r}"
        )
    checks.positive_number("timeout", timeout)
    checks.one_of("verbose", verbose, (0, 1))
    if tpu in _STRATEGIES:
        return _STRATEGIES[tpu]
    if tpu is None:
        chosen, description, found = _detect(timeout)
        if found is not None:
            # The TPU found is also what `strategy(tpu=found)` returns.
            _STRATEGIES.setdefault(found, chosen)
    else:
        try:
            chosen, description = _tpu_strategy(tpu, timeout)
        except _NO_TPU_ERRORS as error:
            raise ValueError(
                f"No TPU could be reached at `tpu`: {error} Check the name or "
                "address, or pass `tpu=None` to use what this machine has. "
                f"Received: tpu={tpu!r}"
            ) from error
    _STRATEGIES[tpu] = chosen
    if verbose:
        print(f"kfinetune.distribute.strategy: {description}")
    return chosen


def _detect(timeout):
    remote_error = None
    for candidate in _tpu_candidates():
        if candidate in _STRATEGIES:
            chosen = _STRATEGIES[candidate]
            return chosen, _describe_tpu(chosen, candidate), candidate
        try:
            return (*_tpu_strategy(candidate, timeout), candidate)
        except _NO_TPU_ERRORS as error:
            if candidate != "local":
                remote_error = error
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        mirrored = tf.distribute.MirroredStrategy()
        names = ", ".join(gpu.name for gpu in gpus)
        description = (
            f"MirroredStrategy over {len(gpus)} GPUs ({names}), "
            f"{mirrored.num_replicas_in_sync} replicas"
        )
        return mirrored, description, None
    device = gpus[0].name if gpus else "the CPU"
    reason = ""
    if remote_error is not None:
        # A TPU was named but did not answer: worth saying why.
        reason = f" (the TPU named by the environment failed: {remote_error})"
    description = f"default strategy on {device}, 1 replica{reason}"
    return tf.distribute.get_strategy(), description, None


def _tpu_candidates():
    address = os.environ.get(COLAB_TPU_ADDRESS)
    if address:
        yield f"grpc://{address}"
    if any(os.environ.get(name) for name in TPU_NAME_VARIABLES):
        # `TPUClusterResolver(tpu="")` reads the name itself.
        yield ""
    yield "local"


def _tpu_strategy(tpu, timeout):
    """Connects to `tpu` and initialises it; raises one of `_NO_TPU_ERRORS`
    when there is no TPU there."""
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    if tpu != "local":
        # A remote TPU: make sure its worker answers before TensorFlow
        # connects (its own connection retries for many minutes).
        _check_reachable(resolver.master(), timeout)
        tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    tpu_strategy = tf.distribute.TPUStrategy(resolver)
    return tpu_strategy, _describe_tpu(tpu_strategy, tpu)


def _describe_tpu(tpu_strategy, tpu):
    cores = tpu_strategy.num_replicas_in_sync
    where = "attached to this machine"
    if tpu != "local":
        where = tpu_strategy.cluster_resolver.master()
    return f"TPUStrategy over {cores} TPU cores ({where})"


def _check_reachable(master, timeout):
    """Raises `ConnectionError` (an `OSError`) unless a gRPC server answers
    at the `grpc://host:port` address `master` within `timeout` seconds.

    gRPC runs over HTTP/2, whose server answers a client's connection
    preface with a SETTINGS frame: a port that accepts connections but
    does not speak HTTP/2 (where TensorFlow's own connection would wait
    for many minutes) fails here in `timeout` seconds.
    """
    parsed = urllib.parse.urlsplit(master)
    if not parsed.hostname or not parsed.port:
        raise ConnectionError(f"The TPU address {master!r} has no port.")
    try:
        with socket.create_connection(
            (parsed.hostname, parsed.port), timeout=timeout
        ) as connection:
            connection.sendall(_HTTP2_PREFACE + _HTTP2_EMPTY_SETTINGS)
            header = connection.recv(9)
    except OSError as error:
        raise ConnectionError(
            f"The TPU worker at {master} did not answer within {timeout} s "
            f"({error})."
        ) from error
    # A frame header: 3 bytes of length, then the frame type.
    if len(header) < 4 or header[3] != _HTTP2_SETTINGS:
        raise ConnectionError(
            f"The server at {master} is not a TPU worker: it does not speak "
            "gRPC."
        )
