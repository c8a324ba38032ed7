"""Runs a training script as several local workers, for trying
multi-worker training on one machine before moving to a cluster.

    python -m kfinetune.launch --workers 2 train.py [script arguments]

Each worker is the same script in its own process, with the `TF_CONFIG`
of a local cluster (`127.0.0.1` ports chosen free at start, or `--port`
and the ports after it). Their output is printed line by line, prefixed
`[worker i]`. When a worker exits with an error the others are stopped
and the launcher exits with that worker's code; it exits with 0 once
every worker has.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

from kfinetune import checks

# Seconds a stopped worker gets to exit after SIGTERM before SIGKILL.
GRACE_SECONDS = 10


def _exit_code(returncode):
    # A worker killed by signal N exits with -N; shells report 128 + N.
    return 128 - returncode if returncode < 0 else returncode


def _stream(process, prefix, out, lock):
    for line in iter(process.stdout.readline, ""):
        with lock:
            out.write(f"{prefix} {line}" if line.endswith("\n") else line)
            out.flush()
    process.stdout.close()


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def launch(
    command,
    workers=2,
    port=None,
    host="127.0.0.1",
    threads=1,
    out=None,
):
    """Runs `command` as `workers` local worker processes and waits.

    Args:
        command: the worker's command line after the Python interpreter,
            e.g. `["train.py", "--epochs", "3"]` or
            `["-m", "package.module"]`.
        workers: number of worker processes, a positive integer. Defaults
            to `2`.
        port: the first worker's port; worker `i` gets `port + i`. `None`
            picks free ports. Defaults to `None`.
        host: the address the workers listen on. Defaults to
            `"127.0.0.1"`.
        threads: TensorFlow threads per worker (`TF_NUM_INTRAOP_THREADS`
            and `TF_NUM_INTEROP_THREADS`, unless already set), so workers
            sharing a machine do not oversubscribe its cores; `None` leaves
            TensorFlow's default. Defaults to `1`.
        out: a text stream for the workers' prefixed output and the
            launcher's messages. Defaults to `sys.stdout`.

    Returns:
        `0` when every worker succeeded, else the exit code of the first
        worker that failed (`128 + N` for a worker killed by signal `N`).

    Example:

    ```python
    code = kfinetune.launch.launch(["train.py"], workers=2)
    ```
    """
    if isinstance(command, str) or not command:
        raise ValueError(
            "`command` must be a non-empty list of strings, the script and "
            f"its arguments. Received: command={command!r}"
        )
    checks.positive_integer("workers", workers)
    if port is not None:
        checks.in_range("port", port, 1, 65536 - workers, integer=True)
    if threads is not None:
        checks.positive_integer("threads", threads)
    out = out or sys.stdout
    # Imported here: the launcher itself does not need TensorFlow.
    from kfinetune.distribute.multi_worker import free_ports
    from kfinetune.distribute.multi_worker import tf_config

    ports = (
        free_ports(workers)
        if port is None
        else list(range(port, port + workers))
    )
    addresses = [f"{host}:{p}" for p in ports]
    lock = threading.Lock()
    processes, streams = [], []
    try:
        for index in range(workers):
            env = dict(os.environ)
            env["TF_CONFIG"] = json.dumps(tf_config(addresses, index))
            env["PYTHONUNBUFFERED"] = "1"
            if threads is not None:
                env.setdefault("TF_NUM_INTRAOP_THREADS", str(threads))
                env.setdefault("TF_NUM_INTEROP_THREADS", str(threads))
            process = subprocess.Popen(
                [sys.executable, *command],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                bufsize=1,
            )
            processes.append(process)
            stream = threading.Thread(
                target=_stream,
                args=(process, f"[worker {index}]", out, lock),
                daemon=True,
            )
            stream.start()
            streams.append(stream)
        with lock:
            print(
                f"kfinetune.launch: {workers} workers at "
                f"{', '.join(addresses)}",
                file=out,
                flush=True,
            )
        failed = None
        while failed is None:
            codes = [p.poll() for p in processes]
            failed = next(
                (i for i, c in enumerate(codes) if c not in (None, 0)), None
            )
            if failed is None and all(c == 0 for c in codes):
                break
            time.sleep(0.1)
        if failed is None:
            code = 0
        else:
            code = _exit_code(processes[failed].returncode)
            running = [i for i, p in enumerate(processes) if p.poll() is None]
            with lock:
                print(
                    f"kfinetune.launch: worker {failed} failed with exit "
                    f"code {code}"
                    + (
                        f"; stopping worker(s) {', '.join(map(str, running))}"
                        if running
                        else ""
                    ),
                    file=out,
                    flush=True,
                )
    finally:
        _stop(processes)
        for stream in streams:
            stream.join(5)
    return code


def main(argv=None):
    """The command line `python -m kfinetune.launch`: parses its options
    (`--workers`, `--port`, `--host`, `--threads`, `-m module` or a script,
    then the script's arguments) and runs `launch`.

    Args:
        argv: the arguments after `python -m kfinetune.launch`. Defaults to
            `sys.argv[1:]`.

    Returns:
        The exit code of `launch`.

    Example:

    ```python
    code = kfinetune.launch.main(["--workers", "2", "train.py"])
    ```
    """
    parser = argparse.ArgumentParser(
        prog="python -m kfinetune.launch",
        description=(
            "Runs a training script as several local workers of a "
            "tf.distribute multi-worker cluster (TF_CONFIG set for each), "
            "with their output prefixed by worker; stops them all when "
            "one fails."
        ),
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes (2)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help="first worker's port; worker i gets port + i (free ports)",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="listen address (127.0.0.1)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="TensorFlow threads per worker, 0 for its default (1)",
    )
    parser.add_argument(
        "-m",
        dest="module",
        default=None,
        help="run a module (like python -m) instead of a script",
    )
    parser.add_argument("script", nargs="?", help="the training script")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.module:
        command = ["-m", args.module]
        rest = [args.script] if args.script else []
        command += rest + args.args
    elif args.script:
        command = [args.script, *args.args]
    else:
        parser.error("give a script (or -m module) to run")
    try:
        code = launch(
            command,
            workers=args.workers,
            port=args.port,
            host=args.host,
            threads=args.threads or None,
        )
    except ValueError as error:
        parser.error(str(error))
    return code


if __name__ == "__main__":
    # Ctrl-C reaches the workers too (same process group); the launcher's
    # `finally` then stops any that remain.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
