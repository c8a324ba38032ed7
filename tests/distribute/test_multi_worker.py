"""Multi-worker training over real worker processes on this machine.

Each test starts TensorFlow processes (`train_worker.py`) with the
`TF_CONFIG` of a local two-worker cluster on ports picked free at run
time, waits for them with a timeout and kills every one it started, by
pid, whatever happens.
"""

import io
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from kfinetune import launch
from kfinetune.distribute import multi_worker

HERE = pathlib.Path(__file__).parent
WORKER = str(HERE / "train_worker.py")
TIMEOUT = 300
# Measured: the two-worker losses differ from one process by < 1e-6
# relative (float32 summation order of the all-reduce). AdamW divides by
# the root of tiny second moments, which magnifies that rounding in a few
# weights to ~2e-6 absolute (weights are ~1e-2, a step 1e-2).
RTOL = 1e-5
WEIGHTS_ATOL = 1e-5


class Process:
    """A worker process whose output is collected by a thread."""

    def __init__(self, args, tf_config=None):
        env = dict(os.environ)
        env.pop("TF_CONFIG", None)
        env.update(
            TF_CPP_MIN_LOG_LEVEL="3",
            TF_NUM_INTRAOP_THREADS="1",
            TF_NUM_INTEROP_THREADS="1",
            PYTHONUNBUFFERED="1",
        )
        if tf_config is not None:
            env["TF_CONFIG"] = json.dumps(tf_config)
        self.popen = subprocess.Popen(
            [sys.executable, WORKER, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.append(line)

    @property
    def output(self):
        return "".join(self.lines)

    def wait(self, deadline):
        self.popen.wait(max(1.0, deadline - time.monotonic()))
        self.reader.join(10)
        return self.popen.returncode

    def wait_for(self, text, deadline):
        while time.monotonic() < deadline:
            if text in self.output:
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never printed:\n{self.output}")

    def result(self):
        for line in self.lines:
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :])
        raise AssertionError(f"no RESULT line:\n{self.output}")

    def kill(self):
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


class Cluster:
    """Starts processes and kills every one of them on exit."""

    def __init__(self):
        self.processes = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            process.kill()

    def start(self, args, tf_config=None):
        process = Process(args, tf_config)
        self.processes.append(process)
        return process

    def workers(self, args, addresses):
        return [
            self.start(args, multi_worker.tf_config(addresses, i))
            for i in range(len(addresses))
        ]


def local_addresses(count=2):
    return [f"127.0.0.1:{p}" for p in multi_worker.free_ports(count)]


def finish(processes, deadline):
    for process in processes:
        code = process.wait(deadline)
        assert code == 0, process.output
    return [p.result() for p in processes]


def weights(directory):
    with open(directory / "weights.json") as f:
        return [np.asarray(w) for w in json.load(f)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """One two-worker run and one single-process run, side by side."""
    out = tmp_path_factory.mktemp("uninterrupted")
    deadline = time.monotonic() + TIMEOUT
    with Cluster() as cluster:
        workers = cluster.workers(
            ["--multi-worker", "--output", str(out / "multi")],
            local_addresses(),
        )
        single = cluster.start(["--output", str(out / "single")])
        results = finish([*workers, single], deadline)
    return out, results


def test_two_workers_match_one_process(uninterrupted):
    out, (chief, other, single) = uninterrupted
    assert chief["chief"] and not other["chief"]
    assert len(single["losses"]) == 12
    np.testing.assert_allclose(chief["losses"], single["losses"], rtol=RTOL)
    # The workers log the same (all-reduced) losses and end in sync.
    assert other["losses"] == chief["losses"]
    assert other["weights_sum"] == chief["weights_sum"]
    # Only the chief wrote its output.
    assert sorted(os.listdir(out / "multi")) == ["weights.json"]
    for got, expected in zip(
        weights(out / "multi"), weights(out / "single"), strict=True
    ):
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=WEIGHTS_ATOL)


# About 25 s: two runs of two worker processes, each of which imports
# TensorFlow and connects to its peer; killing a real process is what the
# test checks.
def test_killed_worker_resumes_from_backup(uninterrupted, tmp_path):
    out, _ = uninterrupted
    backup = tmp_path / "backup"
    args = ["--multi-worker", "--output", str(tmp_path / "resumed")]
    args += ["--backup", str(backup)]
    deadline = time.monotonic() + TIMEOUT
    with Cluster() as cluster:
        addresses = local_addresses()
        # Worker 1 stops at batch 2 of epoch 1 (of 0..2), after the backup
        # of epoch 0, and is killed there.
        first = cluster.workers([*args, "--pause-at", "1:1:2"], addresses)
        first[1].wait_for("PAUSED", deadline)
        first[1].kill()
        # Its peer blocks in the next all-reduce: a cluster manager
        # restarts the whole job; here the test stops it.
        first[0].kill()
        with open(backup / "training_metadata.json") as f:
            assert json.load(f)["epoch"] == 1
        assert not (tmp_path / "resumed").exists()
        finish(cluster.workers(args, local_addresses()), deadline)
    for got, expected in zip(
        weights(tmp_path / "resumed"), weights(out / "multi"), strict=True
    ):
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=WEIGHTS_ATOL)
    # The chief deleted its backup when training ended.
    assert not backup.exists()


def test_missing_worker_fails_within_timeout(tmp_path):
    addresses = local_addresses()
    start = time.monotonic()
    with Cluster() as cluster:
        alone = cluster.start(
            [
                "--multi-worker",
                "--output",
                str(tmp_path),
                "--join-timeout",
                "5",
            ],
            multi_worker.tf_config(addresses, 0),
        )
        code = alone.wait(start + 120)
    assert code == -signal.SIGKILL, alone.output
    assert "worker 0 gave up after 5 s" in alone.output
    assert f"Not reachable: worker 1 ({addresses[1]})" in alone.output
    assert time.monotonic() - start < 120


FAILING = """
import json, os, sys, time
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
print("hello from", index, flush=True)
if index == 1:
    sys.exit(3)
time.sleep(60)
"""


def test_launcher_stops_all_when_one_fails(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(FAILING)
    out = io.StringIO()
    start = time.monotonic()
    code = launch.launch([str(script)], workers=2, out=out)
    assert code == 3
    text = out.getvalue()
    assert "[worker 1] hello from 1" in text
    assert "[worker 0] hello from 0" in text
    assert "worker 1 failed with exit code 3; stopping worker(s) 0" in text
    assert time.monotonic() - start < 30


def test_launcher_sets_tf_config_and_exits_zero(tmp_path):
    script = tmp_path / "ok.py"
    script.write_text(
        "import json, os\n"
        "c = json.loads(os.environ['TF_CONFIG'])\n"
        "print(c['task']['index'], len(c['cluster']['worker']),"
        " os.environ['TF_NUM_INTRAOP_THREADS'])\n"
    )
    out = io.StringIO()
    assert launch.launch([str(script), "x"], workers=3, out=out) == 0
    for index in range(3):
        assert f"[worker {index}] {index} 3 1\n" in out.getvalue()


def test_launcher_main_exit_code(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(FAILING)
    result = subprocess.run(
        [sys.executable, "-m", "kfinetune.launch", "--workers", "2", script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "worker 1 failed with exit code 3" in result.stdout


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"command": "train.py"}, "Received: command='train.py'"),
        ({"command": ["a.py"], "workers": 0}, "Received: workers=0"),
        ({"command": ["a.py"], "port": 0}, "Received: port=0"),
        ({"command": ["a.py"], "threads": 0}, "Received: threads=0"),
    ],
)
def test_launcher_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        launch.launch(**kwargs)


def test_tf_config_and_errors():
    config = multi_worker.tf_config(["h:1", "h:2"], 1)
    assert config["task"] == {"type": "worker", "index": 1}
    with pytest.raises(ValueError, match="Received: index=2"):
        multi_worker.tf_config(["h:1", "h:2"], 2)
    with pytest.raises(ValueError, match="Received: addresses="):
        multi_worker.tf_config(["nohost"], 0)
    assert len(set(multi_worker.free_ports(3))) == 3
