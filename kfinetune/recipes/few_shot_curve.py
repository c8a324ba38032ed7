"""`few_shot_curve`: accuracy against examples per class, over seeds."""

import numbers
import time

import keras
import numpy as np

from kfinetune import checks
from kfinetune.compiling import compile_and_build
from kfinetune.data.few_shot import few_shot
from kfinetune.data.labelled_texts import TextClassificationData
from kfinetune.evaluation.classification import evaluate_classifier
from kfinetune.recipes.few_shot_method import FewShotMethod

METRICS = ("accuracy", "macro_f1")


def _mean_std(values):
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if values.size > 1 else 0.0
    return float(values.mean()), float(std)


class FewShotCurve:
    """The result of `few_shot_curve`: one test score per method, k, seed.

    `str()` gives a table of mean ± sample standard deviation over seeds
    (rows: methods; columns: examples per class), `to_dict()` a JSON-ready
    dict that `from_dict` reads back, and `plot(path)` the curve as a PNG.

    Args:
        runs: a list of dicts, one per run, each with at least `method`,
            `k`, `seed`, `accuracy` and `macro_f1`.
        methods: a dict mapping each method name, in table order, to a
            JSON-ready description (e.g. `FewShotMethod.get_config()`).
        settings: a JSON-ready dict of the protocol's settings (steps,
            batch size, ...). Defaults to `None` (none recorded).

    Raises:
        ValueError: if a run lacks a field or names an unknown method, or
            a method, k and seed occur twice.

    Example:

    ```python
    curve = kfinetune.recipes.few_shot_curve(build, data, seeds=3)
    print(curve)
    curve.plot("few_shot.png")
    mean, std = curve.summary()["full"][16]["accuracy"]
    ```
    """

    def __init__(self, runs, methods, settings=None):
        methods = dict(methods)
        runs = [dict(run) for run in runs]
        seen = set()
        for run in runs:
            missing = {"method", "k", "seed", *METRICS} - set(run)
            if missing:
                raise ValueError(
                    f"Every run needs the fields {sorted(missing)}. "
                    f"Received: run={run!r}"
                )
            if run["method"] not in methods:
                raise ValueError(
                    f"A run names a method that `methods` does not list "
                    f"({list(methods)}). Received: run={run!r}"
                )
            key = (run["method"], run["k"], run["seed"])
            if key in seen:
                raise ValueError(
                    "Each method, k and seed may be run only once. "
                    f"Received: a second run={run!r}"
                )
            seen.add(key)
        self.runs = runs
        self.methods = methods
        self.settings = dict(settings or {})

    @property
    def ks(self):
        """The examples per class that were run, increasing."""
        return sorted({run["k"] for run in self.runs})

    @property
    def seeds(self):
        """The seeds that were run, increasing."""
        return sorted({run["seed"] for run in self.runs})

    def scores(self, method, k, metric="accuracy"):
        """The test scores of one method at one k, in seed order.

        Args:
            method: a method name.
            k: examples per class.
            metric: `"accuracy"` or `"macro_f1"`. Defaults to
                `"accuracy"`.

        Returns:
            A list of floats, one per seed run.

        Example:

        ```python
        curve.scores("lora", 16)  # [0.71, 0.74, 0.69]
        ```
        """
        checks.one_of("metric", metric, METRICS)
        runs = [r for r in self.runs if r["method"] == method and r["k"] == k]
        return [r[metric] for r in sorted(runs, key=lambda r: r["seed"])]

    def summary(self):
        """Mean and sample standard deviation over seeds of every score.

        Returns:
            A dict `{method: {k: {metric: (mean, std)}}}` over the metrics
            `"accuracy"` and `"macro_f1"`; the standard deviation of a
            single seed is 0.

        Example:

        ```python
        mean, std = curve.summary()["full"][16]["accuracy"]
        ```
        """
        summary = {}
        for method in self.methods:
            per_k = {}
            for k in self.ks:
                if self.scores(method, k):
                    per_k[k] = {
                        metric: _mean_std(self.scores(method, k, metric))
                        for metric in METRICS
                    }
            summary[method] = per_k
        return summary

    def table(self, metric="accuracy"):
        """A Markdown table of mean ± std: methods by examples per class.

        Args:
            metric: `"accuracy"` or `"macro_f1"`. Defaults to
                `"accuracy"`.

        Returns:
            The table as a string.

        Example:

        ```python
        print(curve.table("macro_f1"))
        ```
        """
        checks.one_of("metric", metric, METRICS)
        summary = self.summary()
        header = ["method"] + [f"k={k}" for k in self.ks]
        rows = []
        for method, per_k in summary.items():
            cells = [method]
            for k in self.ks:
                if k in per_k:
                    mean, std = per_k[k][metric]
                    cells.append(f"{mean:.3f} ± {std:.3f}")
                else:
                    cells.append("")
            rows.append(cells)
        widths = [
            max(len(row[i]) for row in [header, *rows])
            for i in range(len(header))
        ]

        def line(cells):
            padded = [
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(
                    zip(cells, widths, strict=True)
                )
            ]
            return "| " + " | ".join(padded) + " |"

        rule = ["-" * widths[0]] + ["-" * (w - 1) + ":" for w in widths[1:]]
        return "\n".join([line(header), line(rule), *map(line, rows)])

    def __str__(self):
        seeds = len(self.seeds)
        return (
            f"Test accuracy, mean ± std over {seeds} seed"
            f"{'s' if seeds != 1 else ''}, by examples per class (k):\n"
            + self.table()
        )

    def __repr__(self):
        return (
            f"FewShotCurve(methods={list(self.methods)}, ks={self.ks}, "
            f"seeds={self.seeds})"
        )

    def to_dict(self):
        """The settings, methods, every run and the summary, JSON-ready.

        Returns:
            A dict with `settings`, `methods`, `runs` and `summary` (the
            summary's `(mean, std)` pairs as `{"mean", "std"}` dicts keyed
            by `str(k)`, as JSON keys are strings).

        Example:

        ```python
        pathlib.Path("curve.json").write_text(json.dumps(curve.to_dict()))
        ```
        """
        summary = {
            method: {
                str(k): {
                    metric: {"mean": mean, "std": std}
                    for metric, (mean, std) in scores.items()
                }
                for k, scores in per_k.items()
            }
            for method, per_k in self.summary().items()
        }
        return {
            "settings": self.settings,
            "methods": self.methods,
            "runs": self.runs,
            "summary": summary,
        }

    @classmethod
    def from_dict(cls, config):
        """Rebuilds a `FewShotCurve` from `to_dict()`'s output.

        Args:
            config: a dict with `runs`, `methods` and optionally
                `settings` (`summary` is recomputed, not read).

        Returns:
            A `FewShotCurve`.

        Example:

        ```python
        curve = kfinetune.recipes.FewShotCurve.from_dict(
            json.loads(pathlib.Path("curve.json").read_text()))
        ```
        """
        return cls(
            runs=config["runs"],
            methods=config["methods"],
            settings=config.get("settings"),
        )

    def plot(self, path, metric="accuracy", title=None):
        """Draws the curves, mean ± one std band, to a PNG file.

        The x axis is base-2 logarithmic (doubling k is one step). A
        method that was not run at every k is left out.

        Args:
            path: the PNG file; its folder is created when missing.
            metric: `"accuracy"` or `"macro_f1"`. Defaults to
                `"accuracy"`.
            title: the figure title. Defaults to `None` (none).

        Returns:
            The path written, as a `pathlib.Path`.

        Example:

        ```python
        curve.plot("docs/img/few_shot.png")
        ```
        """
        # Imported here so that the recipe does not import matplotlib.
        from kfinetune.plotting import save_curves

        checks.one_of("metric", metric, METRICS)
        summary = self.summary()
        curves = {}
        for method, per_k in summary.items():
            ks = [k for k in self.ks if k in per_k]
            if ks != self.ks:
                continue
            curves[method] = (
                [per_k[k][metric][0] for k in ks],
                [per_k[k][metric][1] for k in ks],
            )
        label = "test accuracy" if metric == "accuracy" else "test macro-F1"
        return save_curves(
            path,
            self.ks,
            curves,
            xlabel="labelled examples per class (k)",
            ylabel=label,
            title=title,
            logx=True,
        )


def _check_ks(ks):
    if isinstance(ks, numbers.Integral) or not hasattr(ks, "__iter__"):
        raise ValueError(
            "`ks` must be a sequence of positive integers (examples per "
            f"class). Received: ks={ks!r}"
        )
    ks = list(ks)
    if not ks:
        raise ValueError(f"`ks` must not be empty. Received: ks={ks!r}")
    positive = all(
        isinstance(k, numbers.Integral) and not isinstance(k, bool) and k > 0
        for k in ks
    )
    if not positive or len(set(ks)) != len(ks):
        raise ValueError(
            f"`ks` must hold positive integers, each once. Received: ks={ks!r}"
        )
    return sorted(int(k) for k in ks)


def _check_seeds(seeds):
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        checks.positive_integer("seeds", seeds)
        return list(range(int(seeds)))
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise ValueError(
            "`seeds` must be a number of seeds or a sequence of seeds. "
            f"Received: seeds={seeds!r}"
        )
    seeds = list(seeds)
    valid = all(
        isinstance(seed, numbers.Integral)
        and not isinstance(seed, bool)
        and seed >= 0
        for seed in seeds
    )
    if not seeds or not valid or len(set(seeds)) != len(seeds):
        raise ValueError(
            "`seeds` must be a number of seeds or a non-empty sequence of "
            f"non-negative integers, each once. Received: seeds={seeds!r}"
        )
    return [int(seed) for seed in seeds]


def _check_methods(methods):
    if methods is None:
        return {
            "full": FewShotMethod.full(),
            "lora": FewShotMethod.lora(),
            "prompt": FewShotMethod.prompt(),
            "linear_probe": FewShotMethod.linear_probe(),
        }
    if not isinstance(methods, dict) or not methods:
        raise ValueError(
            "`methods` must be a non-empty dict mapping names to "
            f"`FewShotMethod`s. Received: methods={methods!r}"
        )
    for name, method in methods.items():
        if not isinstance(name, str) or not isinstance(method, FewShotMethod):
            raise ValueError(
                "`methods` must map string names to `FewShotMethod`s. "
                f"Received: methods[{name!r}]={method!r}"
            )
    return dict(methods)


def _run(build, method, sample, data, seed, steps, batch_size, loss, jit):
    start = time.perf_counter()
    # Every run builds a new model; clearing the session keeps the models
    # of earlier runs from piling up in memory.
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = method(build())
    batch_size = min(batch_size, len(sample))
    # Shuffled before the repeat, so every pass over the sample is a new
    # order; whole batches only, so XLA compiles one shape.
    train = (
        sample.as_dataset(shuffle=True, seed=seed)
        .repeat()
        .batch(batch_size, drop_remainder=True)
    )
    learning_rate = keras.optimizers.schedules.PolynomialDecay(
        method.learning_rate, decay_steps=steps, end_learning_rate=0.0
    )
    compile_and_build(
        model,
        optimizer=keras.optimizers.AdamW(learning_rate),
        loss=loss
        or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=None,
        jit_compile=jit,
    )
    # The dataset shuffles itself; `shuffle` would only warn that it cannot.
    model.fit(train, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)
    report = evaluate_classifier(model, data.test, data.class_names)
    return {
        "seed": seed,
        "accuracy": report.accuracy,
        "macro_f1": report.macro_f1,
        "train_examples": len(sample),
        "batch_size": batch_size,
        "trainable_params": sum(
            int(np.prod(v.shape)) for v in model.trainable_weights
        ),
        "seconds": time.perf_counter() - start,
    }


def few_shot_curve(
    build,
    data,
    ks=(8, 16, 32, 64),
    seeds=5,
    methods=None,
    steps=100,
    batch_size=16,
    loss=None,
    jit_compile="auto",
    verbose=1,
):
    """Test accuracy of fine-tuning methods against examples per class.

    For every method, every `k` and every seed: Keras's session is
    cleared and its random generators seeded with the seed
    (`keras.utils.set_random_seed`), a fresh model is built with `build()`
    and configured by the method, `k` examples per class are drawn from
    `data`'s train split with `kfinetune.data.few_shot(data, k, seed)`,
    the model trains on them, and `kfinetune.evaluation.
    evaluate_classifier` scores it on `data`'s test split. One line is
    printed per run. The same seed gives the same run; the samples are
    nested (for one seed the `k=8` sample is part of the `k=16` one), so
    the curve measures more data, not another draw.

    Every run trains a fixed number of `steps` at batch size
    `min(batch_size, number of examples)`, whatever `k`: the compute is the
    same at every point of the curve, and a small sample is passed over
    many times (with 8 examples of each of 2 classes and batch 16, one
    epoch is one step, so 100 steps are 100 epochs). Every pass is a new
    shuffle. The optimizer is AdamW at the method's learning rate, decayed
    linearly to zero over the steps.

    Every sample is drawn before the first model is built, so a `k` larger
    than a class of the train split fails at once.

    Args:
        build: a function of no arguments that returns a fresh, untrained
            classifier taking raw texts (with its preprocessor), e.g.
            `lambda: kfinetune.presets.text_classifier(num_classes=2)`.
        data: a `kfinetune.data.TextClassificationData`.
        ks: examples per class, positive integers. Defaults to
            `(8, 16, 32, 64)`.
        seeds: the number of seeds (seeds `0 .. seeds - 1`) or a sequence
            of seeds. Defaults to `5`.
        methods: a dict mapping names to `FewShotMethod`s. Defaults to
            `None`: full fine-tuning, LoRA, prompt tuning and the linear
            probe with their standard settings (`FewShotMethod.full()`,
            ...).
        steps: training steps of every run. Defaults to `100`.
        batch_size: the largest batch size. Defaults to `16`.
        loss: defaults to sparse categorical cross-entropy on logits.
        jit_compile: passed to `compile`. Defaults to `"auto"`.
        verbose: `1` prints one line per run, `0` nothing. Defaults to
            `1`.

    Returns:
        A `FewShotCurve`.

    Raises:
        ValueError: before anything is built, if an argument is invalid or
            a class of the train split has fewer than the largest `k`
            examples.

    Example:

    ```python
    data = kfinetune.data.tweet_sentiment(classes=2)
    curve = kfinetune.recipes.few_shot_curve(
        lambda: kfinetune.presets.text_classifier(num_classes=2),
        data,
        ks=(8, 32),
        seeds=3,
        methods={"full": kfinetune.recipes.FewShotMethod.full()},
    )
    print(curve)
    curve.plot("few_shot.png")
    ```
    """
    if not callable(build):
        raise ValueError(
            "`build` must be a function of no arguments that returns a new "
            f"model. Received: build={build!r}"
        )
    if not isinstance(data, TextClassificationData):
        raise ValueError(
            "`data` must be a `kfinetune.data.TextClassificationData` (the "
            "train split is sampled, the test split scores). "
            f"Received: data={data!r}"
        )
    ks = _check_ks(ks)
    seeds = _check_seeds(seeds)
    methods = _check_methods(methods)
    checks.positive_integer("steps", steps)
    checks.positive_integer("batch_size", batch_size)
    checks.one_of("verbose", verbose, (0, 1))
    samples = {
        (k, seed): few_shot(data.splits["train"], k, seed)
        for k in ks
        for seed in seeds
    }

    runs = []
    for name, method in methods.items():
        for k in ks:
            for seed in seeds:
                run = _run(
                    build,
                    method,
                    samples[(k, seed)],
                    data,
                    seed,
                    steps,
                    batch_size,
                    loss,
                    jit_compile,
                )
                run = {"method": name, "k": k, **run}
                runs.append(run)
                if verbose:
                    print(
                        f"{name} k={k} seed={seed}: test accuracy "
                        f"{run['accuracy']:.3f}, macro-F1 "
                        f"{run['macro_f1']:.3f} ({run['seconds']:.0f} s)",
                        flush=True,
                    )
    settings = {
        "ks": ks,
        "seeds": seeds,
        "steps": steps,
        "batch_size": batch_size,
        "optimizer": "AdamW, linear decay to 0 over the steps",
        "class_names": list(data.class_names),
        "test_examples": len(data.splits["test"]),
    }
    return FewShotCurve(
        runs,
        {name: method.get_config() for name, method in methods.items()},
        settings,
    )
