"""Runs `examples/colab_tpu.ipynb` top to bottom on the CPU, so it never rots.

The notebook runs in a real IPython kernel (the cells are the ones a Colab
user runs; its install cell is skipped because kfinetune is importable).
`KFINETUNE_NOTEBOOK_STEPS` limits every epoch and evaluation to a few steps,
and `kfinetune.distribute.strategy()` falls back to the default strategy.
The kernel listens on free ports that jupyter_client picks when it starts,
and is ended by its process id whatever happens.
"""

import os
import pathlib
import signal

import jupyter_client
import nbclient
import nbformat

NOTEBOOK = (
    pathlib.Path(__file__).resolve().parents[1] / "examples" / "colab_tpu.ipynb"
)
STEPS = 2
CELL_TIMEOUT = 300
STARTUP_TIMEOUT = 60


def cell_outputs(notebook):
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output["text"])
            elif "data" in output:
                texts.append(output["data"].get("text/plain", ""))
    return "\n".join(texts)


def end_process(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return  # already gone
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


# About 30 s, the suite's slowest test: a fresh IPython kernel imports
# TensorFlow, keras-hub and kfinetune (8-10 s) and the notebook builds and
# fine-tunes the real MiniLM; only a whole run of the cells a Colab user
# runs shows that the notebook still works.
def test_colab_notebook_runs_on_cpu(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    env = dict(os.environ, KFINETUNE_NOTEBOOK_STEPS=str(STEPS))
    # Nothing in the notebook may ask for a TPU or a GPU here.
    for name in ("COLAB_TPU_ADDR", "TPU_NAME", "CUDA_VISIBLE_DEVICES"):
        env.pop(name, None)
    env["CUDA_VISIBLE_DEVICES"] = ""
    manager = jupyter_client.KernelManager(kernel_name="python3")
    manager.start_kernel(
        env=env,
        cwd=str(tmp_path),
        # No IPython history file in the user's home.
        extra_arguments=["--HistoryManager.hist_file=:memory:"],
    )
    pid = manager.provisioner.pid
    client = None
    try:
        client = nbclient.NotebookClient(
            notebook,
            km=manager,
            timeout=CELL_TIMEOUT,
            startup_timeout=STARTUP_TIMEOUT,
            resources={"metadata": {"path": str(tmp_path)}},
        )
        client.execute()
    finally:
        try:
            if client is not None and client.kc is not None:
                client.kc.stop_channels()
            if manager.has_kernel:
                manager.shutdown_kernel(now=True)
        finally:
            end_process(pid)

    out = cell_outputs(notebook)
    assert "kfinetune.distribute.strategy: default strategy" in out
    assert "1 replicas, global batch 16" in out
    assert "GradualUnfreezing" in out
    assert "Epoch 4/4" in out
    assert f"{STEPS}/{STEPS} - " in out
    outputs = tmp_path / "colab_tpu_outputs"
    assert (outputs / "tweets.adapter.h5").is_file()
    assert (outputs / "tweets_savedmodel" / "saved_model.pb").is_file()
    assert "b'positive'" in out or "b'negative'" in out
