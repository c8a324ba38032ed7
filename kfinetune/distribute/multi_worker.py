"""Multi-worker training: `TF_CONFIG` for local workers, a
`MultiWorkerMirroredStrategy` that fails fast when a worker is missing,
and a `BackupAndRestore` that only the chief writes."""

import json
import os
import socket
import subprocess
import sys

import keras
import tensorflow as tf

from kfinetune import checks

_WATCHDOG = """
import json, os, select, signal, socket, sys
pid, timeout, workers, me = sys.argv[1:]
timeout, workers = float(timeout), json.loads(workers)
if select.select([sys.stdin], [], [], timeout)[0]:
    sys.exit(0)
def reachable(address):
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False
missing = [f"{n} ({a})" for n, a in workers.items() if not reachable(a)]
print(
    f"kfinetune: {me} gave up after {timeout:g} s waiting for the other "
    "workers of TF_CONFIG to join the MultiWorkerMirroredStrategy. Not "
    f"reachable: {', '.join(missing) or 'none (a worker may be stuck)'}. "
    "Start every worker of the cluster with the same TF_CONFIG cluster, "
    "or fix its address. Stopping this worker (SIGKILL).",
    file=sys.stderr,
    flush=True,
)
os.kill(int(pid), signal.SIGKILL)
"""


def free_ports(count):
    """Ports free on this machine now: each found by binding port 0.

    The sockets are all open together (so the ports differ) and closed
    before returning; another program could take a port in between, which
    is unlikely for the few seconds before the workers bind them.

    Args:
        count: how many ports, a positive integer.

    Returns:
        A list of `count` distinct port numbers.

    Example:

    >>> len(set(kfinetune.distribute.free_ports(2)))
    2
    """
    checks.positive_integer("count", count)
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses, index):
    """The `TF_CONFIG` of worker `index` of a cluster of workers.

    Worker 0 is the chief (it writes checkpoints and logs); there is no
    separate `"chief"` task.

    Args:
        addresses: one `"host:port"` string per worker, the same list (in
            the same order) on every worker.
        index: this worker's position in `addresses`.

    Returns:
        A dict; `json.dumps` it into the `TF_CONFIG` environment variable
        before TensorFlow creates the strategy.

    Example:

    >>> kfinetune.distribute.tf_config(["10.0.0.1:2222", "10.0.0.2:2222"], 1)
    {'cluster': {'worker': ['10.0.0.1:2222', '10.0.0.2:2222']}, \
'task': {'type': 'worker', 'index': 1}}
    """
    if isinstance(addresses, str) or not addresses:
        raise ValueError(
            "`addresses` must be a non-empty list of 'host:port' strings. "
            f"Received: addresses={addresses!r}"
        )
    for address in addresses:
        host, _, port = str(address).rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(
                "Each of `addresses` must be a 'host:port' string. "
                f"Received: addresses={addresses!r}"
            )
    checks.in_range("index", index, 0, len(addresses), integer=True)
    return {
        "cluster": {"worker": list(addresses)},
        "task": {"type": "worker", "index": index},
    }


def _cluster_from_environment():
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError(
            "Multi-worker training needs the TF_CONFIG environment variable "
            "(`python -m kfinetune.launch` sets it for local workers). "
            "Received: TF_CONFIG=None"
        )
    try:
        config = json.loads(raw)
        cluster = config["cluster"]
        task = config["task"]
        workers = list(cluster.get("chief", [])) + list(cluster["worker"])
        task_type, task_index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            "TF_CONFIG must be JSON with 'cluster' (a 'worker' list) and "
            f"'task' ('type' and 'index'): {error}. Received: TF_CONFIG={raw}"
        ) from None
    if task_type not in ("chief", "worker"):
        raise ValueError(
            "TF_CONFIG's task type must be 'chief' or 'worker'. "
            f"Received: TF_CONFIG={raw}"
        )
    own = cluster.get(task_type, [])
    if not 0 <= task_index < len(own):
        raise ValueError(
            f"TF_CONFIG's task index {task_index} names no {task_type} of the "
            f"cluster ({len(own)} listed). Received: TF_CONFIG={raw}"
        )
    names = [f"chief {i}" for i in range(len(cluster.get("chief", [])))]
    names += [f"worker {i}" for i in range(len(cluster["worker"]))]
    return dict(zip(names, workers, strict=True)), f"{task_type} {task_index}"


class _MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """`MultiWorkerMirroredStrategy` whose `reduce` takes what Keras 3.15's
    `fit` gives it.

    - Nested values: `fit` reduces a whole data batch (`(x, y)`, with dict
      inputs) at once to build the model; `MirroredStrategy` maps its
      reduction over the nest but `MultiWorkerMirroredStrategy` (TF 2.21)
      fails ("Attempt to convert a value ({'token_ids': PerReplica...").
      Each leaf is reduced in turn, in the same order on every worker.
    - Scalars along `axis=0`: `fit` reduces each logged metric (a scalar
      per replica) with `reduce("MEAN", value, axis=0)` under multi-worker
      strategies, which fails ("Invalid reduction dimension 0 for input
      with 0 dimensions"); a scalar is averaged across replicas.
    """

    def reduce(self, reduce_op, value, axis=None):
        parent = super()
        if isinstance(value, (dict, list, tuple)):
            return tf.nest.map_structure(
                lambda leaf: (
                    None if leaf is None else self.reduce(reduce_op, leaf, axis)
                ),
                value,
            )
        if axis is not None:
            local = self.experimental_local_results(value)[0]
            if getattr(local, "shape", None) is not None and (
                local.shape.rank == 0
            ):
                axis = None
        return parent.reduce(reduce_op, value, axis)


def multi_worker_strategy(timeout=120, collective_timeout=None):
    """A `tf.distribute.MultiWorkerMirroredStrategy` from `TF_CONFIG` that
    stops with a clear error when a worker never joins.

    Creating the strategy waits until every worker of `TF_CONFIG` has
    started: TensorFlow waits forever for a worker that was never started
    or whose address is wrong. Here a watchdog gives up after `timeout`
    seconds: it prints which workers it cannot reach and kills the process
    (`SIGKILL`: exit code 137 in a shell and from `kfinetune.launch`).
    It must kill the process: the wait runs inside TensorFlow, which no
    exception, thread or signal handler of Python can interrupt.

    Args:
        timeout: seconds to wait for every worker to join, a positive
            number. Defaults to `120`.
        collective_timeout: seconds after which a collective operation
            (a gradient all-reduce) waiting for a peer fails with an error
            instead of hanging, e.g. when a peer died mid-run; `None` leaves
            TensorFlow's default (no limit; the cluster's heartbeat detects
            a dead peer). Defaults to `None`.

    Returns:
        The strategy.

    Example:

    ```python
    strategy = kfinetune.distribute.multi_worker_strategy(timeout=60)
    with strategy.scope():
        model = kft.presets.text_classifier(num_classes=2)
    ```
    """
    checks.positive_number("timeout", timeout)
    if collective_timeout is not None:
        checks.positive_number("collective_timeout", collective_timeout)
    workers, me = _cluster_from_environment()
    options = tf.distribute.experimental.CommunicationOptions(
        timeout_seconds=collective_timeout
    )
    # A watchdog process, not a thread: TensorFlow holds Python's lock
    # while it waits, so no Python thread or signal handler would run.
    watchdog = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _WATCHDOG,
            str(os.getpid()),
            str(timeout),
            json.dumps(workers),
            me,
        ],
        stdin=subprocess.PIPE,
    )
    try:
        strategy = _MultiWorkerMirroredStrategy(communication_options=options)
        # The cluster is known to be up only after a first collective.
        strategy.reduce(
            "SUM", strategy.run(lambda: tf.constant(1.0)), axis=None
        )
    finally:
        watchdog.stdin.close()
        watchdog.wait()
    return strategy


def is_chief(strategy=None):
    """Whether this process is the chief of its cluster: the `"chief"`
    task, or worker 0 when there is none, or the only process of a
    single-process strategy.

    Args:
        strategy: a `tf.distribute.Strategy`. Defaults to the current one.

    Returns:
        A bool.

    Example:

    >>> kfinetune.distribute.is_chief()
    True
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return (
        not has_chief
        and resolver.task_type == "worker"
        and (resolver.task_id == 0)
    )


@keras.saving.register_keras_serializable(package="kfinetune")
class ChiefBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` for multi-worker training: every
    worker restores from `backup_dir`, only the chief writes it.

    Keras 3's `BackupAndRestore` has no notion of workers: each worker
    would write (and at the end delete) the same files at once. Here the
    other workers neither save nor delete, and all restore the chief's
    backup when `fit` starts, so every worker resumes from the same
    weights. The chief is found from the strategy the model was built
    under. `backup_dir` must be readable by every worker (a shared
    filesystem or a bucket, such as `gs://...`, on a cluster).

    Keras restores the weights (the model's and the optimizer's, including
    its step count) and the epoch to resume at. It does not restore the
    position of the data iterator inside an epoch, random generator state
    (dropout, shuffling) or the state of other callbacks.

    Args:
        backup_dir: the backup directory, reserved for this callback.
        save_freq: `"epoch"` or a number of batches. Defaults to `"epoch"`.
        double_checkpoint: keep the previous backup too. Defaults to
            `False`.
        delete_checkpoint: the chief deletes the backup when `fit` ends.
            Defaults to `True`.

    Example:

    ```python
    strategy = kfinetune.distribute.multi_worker_strategy()
    with strategy.scope():
        model = ...
        model.compile(...)
    model.fit(data, epochs=3, callbacks=[
        kfinetune.distribute.ChiefBackupAndRestore("/shared/backup")])
    ```
    """

    def __init__(
        self,
        backup_dir,
        save_freq="epoch",
        double_checkpoint=False,
        delete_checkpoint=True,
    ):
        super().__init__(
            backup_dir,
            save_freq=save_freq,
            double_checkpoint=double_checkpoint,
            delete_checkpoint=delete_checkpoint,
        )

    def _chief(self):
        return is_chief(
            getattr(self.model, "distribute_strategy", None)
            or tf.distribute.get_strategy()
        )

    def on_epoch_end(self, epoch, logs=None):
        if self._chief():
            super().on_epoch_end(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        if self._chief():
            super().on_train_batch_end(batch, logs)

    def on_train_end(self, logs=None):
        if self._chief():
            super().on_train_end(logs)

    def get_config(self):
        return {
            "backup_dir": self.backup_dir,
            "save_freq": self.save_freq,
            "double_checkpoint": self.double_checkpoint,
            "delete_checkpoint": self.delete_checkpoint,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
