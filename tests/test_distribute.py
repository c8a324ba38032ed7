"""Tests of `kfinetune.distribute.strategy`.

There is no TPU or GPU here: the CPU fallback runs for real, as do the
failures to reach a TPU (no TPU attached, a closed port, a port that never
answers); what the TPU and multi-GPU branches do with real devices is
checked by replacing the device listing and the strategy constructors.
"""

import importlib
import socket
import threading
import time

import pytest
import tensorflow as tf

import kfinetune

strategy_module = importlib.import_module("kfinetune.distribute.strategy")
TPU_VARIABLES = ("COLAB_TPU_ADDR", *strategy_module.TPU_NAME_VARIABLES)


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    # Each test starts with no strategy chosen and no TPU in the
    # environment.
    monkeypatch.setattr(strategy_module, "_STRATEGIES", {})
    for name in TPU_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_server():
    """A port that accepts connections and never answers (a firewall or a
    service that is not a TPU worker)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []

    def accept():
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"grpc://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for connection in accepted:
        connection.close()


def test_falls_back_to_the_default_strategy_on_cpu(capsys):
    chosen = kfinetune.distribute.strategy()
    assert chosen is tf.distribute.get_strategy()
    assert chosen.num_replicas_in_sync == 1
    out = capsys.readouterr().out
    assert "default strategy on the CPU, 1 replica" in out
    # Chosen once: the second call neither looks again nor prints.
    assert kfinetune.distribute.strategy() is chosen
    assert capsys.readouterr().out == ""


def test_verbose_0_is_silent(capsys):
    kfinetune.distribute.strategy(verbose=0)
    assert capsys.readouterr().out == ""


def test_named_tpu_that_does_not_answer_falls_back(monkeypatch, capsys):
    monkeypatch.setenv("COLAB_TPU_ADDR", f"127.0.0.1:{closed_port()}")
    chosen = kfinetune.distribute.strategy(timeout=5)
    assert chosen is tf.distribute.get_strategy()
    out = capsys.readouterr().out
    assert "default strategy" in out
    assert "the TPU named by the environment failed" in out


def test_requested_tpu_at_a_closed_port_raises():
    address = f"grpc://127.0.0.1:{closed_port()}"
    with pytest.raises(ValueError, match=f"Received: tpu='{address}'"):
        kfinetune.distribute.strategy(tpu=address)
    assert not strategy_module._STRATEGIES


def test_requested_tpu_that_never_answers_raises_in_time(silent_server):
    start = time.monotonic()
    with pytest.raises(ValueError, match="did not answer within 1 s"):
        kfinetune.distribute.strategy(tpu=silent_server, timeout=1)
    assert time.monotonic() - start < 10


def test_requested_local_tpu_without_one_raises():
    with pytest.raises(ValueError, match="TPUs not found"):
        kfinetune.distribute.strategy(tpu="local")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tpu": ""}, "Received: tpu=''"),
        ({"tpu": 8470}, "Received: tpu=8470"),
        ({"timeout": 0}, "Received: timeout=0"),
        ({"verbose": 2}, "Received: verbose=2"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kfinetune.distribute.strategy(**kwargs)
    assert not strategy_module._STRATEGIES


# Unit tests of the selection logic: the devices and strategies are fakes.


class FakeTPUStrategy:
    num_replicas_in_sync = 8


def test_tpu_found_is_initialised_once(monkeypatch, capsys):
    calls = []

    def fake_tpu_strategy(tpu, timeout):
        calls.append(tpu)
        return FakeTPUStrategy(), "TPUStrategy over 8 TPU cores"

    monkeypatch.setattr(strategy_module, "_tpu_strategy", fake_tpu_strategy)
    chosen = kfinetune.distribute.strategy()
    assert isinstance(chosen, FakeTPUStrategy)
    assert "TPUStrategy over 8 TPU cores" in capsys.readouterr().out
    assert kfinetune.distribute.strategy() is chosen
    # Asking for the TPU found by name gives the same strategy.
    assert kfinetune.distribute.strategy(tpu="local") is chosen
    assert calls == ["local"]


def test_tpu_named_by_the_environment_comes_first(monkeypatch):
    calls = []

    def fake_tpu_strategy(tpu, timeout):
        calls.append((tpu, timeout))
        if tpu == "":
            return FakeTPUStrategy(), "TPUStrategy"
        raise ConnectionError("no answer")

    monkeypatch.setattr(strategy_module, "_tpu_strategy", fake_tpu_strategy)
    monkeypatch.setenv("COLAB_TPU_ADDR", "10.0.0.2:8470")
    monkeypatch.setenv("TPU_NAME", "my-tpu")
    chosen = kfinetune.distribute.strategy(timeout=7)
    assert isinstance(chosen, FakeTPUStrategy)
    assert calls == [("grpc://10.0.0.2:8470", 7), ("", 7)]


def fake_gpus(monkeypatch, count):
    listing = tf.config.list_logical_devices

    def list_logical_devices(device_type=None):
        if device_type == "GPU":
            return [
                tf.config.LogicalDevice(f"/device:GPU:{i}", "GPU")
                for i in range(count)
            ]
        return listing(device_type)

    monkeypatch.setattr(tf.config, "list_logical_devices", list_logical_devices)


def test_several_gpus_give_a_mirrored_strategy(monkeypatch, capsys):
    fake_gpus(monkeypatch, 2)

    class FakeMirroredStrategy:
        num_replicas_in_sync = 2

    monkeypatch.setattr(tf.distribute, "MirroredStrategy", FakeMirroredStrategy)
    chosen = kfinetune.distribute.strategy()
    assert isinstance(chosen, FakeMirroredStrategy)
    assert "MirroredStrategy over 2 GPUs" in capsys.readouterr().out
    assert kfinetune.distribute.strategy() is chosen


def test_one_gpu_gives_the_default_strategy(monkeypatch, capsys):
    fake_gpus(monkeypatch, 1)
    chosen = kfinetune.distribute.strategy()
    assert chosen is tf.distribute.get_strategy()
    assert "default strategy on /device:GPU:0" in capsys.readouterr().out
