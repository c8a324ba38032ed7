"""Token classification quality on real tweets: CRF and softmax heads, full
fine-tuning and LoRA, over seeds.

No tagged corpus installs here, so the tasks are built from real text
(`kfinetune.data.tweet_tagging` makes both).

**Case restoration as span tagging** (`--task case`, the default). Each
tweet of the bundled corpus is lowercased before the model reads it (the
MiniLM tokenizer is uncased as well), and the model tags the spans its
author capitalised mid-sentence:

- `NAME`: a run of Title-case words that do not start a sentence
  ("Southwest Airlines", "Dana Massie", "Global First Class Lounge");
- `ACRONYM`: a run of all-capital words of two letters or more ("ORD",
  "JFK", "UBC", or a shouted "STARBUCKS").

The labels come from the text itself but not from what the model sees, so
the model has to infer them from context: which words are proper names,
which are airport codes. It is a noisy proxy of named-entity recognition
(tweets capitalise freely: "Cancelled Flight" is a NAME span here), the
same noise for every method. `@mentions` and `#hashtags` (their case is
hidden too, but they are marked by their first character) stay `O`, and so
does a sentence's first word, the pronoun "I" and its contractions. Tweets
with more capital than lower-case words (shouting) are left out.

**Punctuation restoration** (`--task punctuation`). Each word loses the
`,` `.` `!` `?` marks at its end, and is tagged with the mark it had
(`B-COMMA`, `B-PERIOD`, `B-EXCLAIM`, `B-QUESTION`; `?` over `!` over `.`
over `,` when several follow one word), or `O`; a word made of marks only
gives its mark to the word before it. Words are lowercased too. Each
punctuated word is a one-word span. A standard token task (restoring the
punctuation of speech transcripts), here on tweets, whose punctuation is
informal.

The CRF runs over words, with the transitions IOB2 forbids forbidden.
Each run builds `kfinetune.presets.token_classifier` on the real MiniLM
(sequence length 64), trains it on 2,000 tweets of a seed's split for a
few epochs (batch 32, linear decay to zero) and reports entity-level
micro-F1 (strict span match, `kfinetune.evaluation`), each type's F1 and
token accuracy on 1,000 test tweets.

    python -m benchmarks.tagging [--task case|punctuation]
        [--methods full_softmax full_crf ...] [--epochs 4] [--seeds 0 1 2]
        [--limit BATCHES] [--tune] [--keep]
"""

import argparse
import dataclasses
import datetime
import json
import logging
import time

import keras
import keras_hub
import numpy as np

import kfinetune
from benchmarks import harness
from benchmarks import report
from kfinetune import evaluation
from kfinetune import layers
from kfinetune import optimizers
from kfinetune import peft
from kfinetune import presets

BATCH_SIZE = 32
SEQUENCE_LENGTH = 64
TRAIN_SIZE = 2000
TEST_SIZE = 1000
VALIDATION_SIZE = 500
# The learning rate of the CRF transitions in full fine-tuning: 100× the
# encoder's, as BERT-CRF taggers usually train them. At the encoder's
# 5e-5 the 25 transition scores would hardly move in a few hundred steps.
CRF_RATE_FACTOR = 100.0

DATA = {
    "case": "case-restoration spans (NAME, ACRONYM)",
    "punctuation": "punctuation restoration (COMMA, PERIOD, QUESTION, "
    "EXCLAIM after a word)",
}
TASKS = kfinetune.data.tweet_tags.TASKS


@dataclasses.dataclass(frozen=True)
class Method:
    """One tagger as the benchmark trains it.

    Attributes:
        crf: a CRF head (else a per-token softmax).
        lora: LoRA, the head trainable (else full fine-tuning).
        learning_rate: the peak AdamW learning rate of the encoder (and of
            the head).
        note: what trains and why this learning rate.
        rank: the LoRA rank (alpha is twice the rank).
        targets: the LoRA targets, a regex; `None` for `LoRAConfig`'s
            default (query and value).
        epochs: the epochs of this method, or `None` for `--epochs`.
        variant: more `LoRAConfig` arguments, naming a LoRA variant (e.g.
            `{"use_dora": True}`); empty for plain LoRA.
    """

    crf: bool
    lora: bool
    learning_rate: float
    note: str
    rank: int = 8
    targets: str = None
    epochs: int = None
    variant: dict = dataclasses.field(default_factory=dict)


# Chosen on 500 validation tweets of seed 0 (`--tune`; the entity F1
# there is in each note): more epochs and a higher rate for full
# fine-tuning; for LoRA, every dense layer of each block at rank 16.
EPOCHS = 4
FULL_RATE = 2e-4
LORA_RATE = 2e-3
LORA_RANK = 16

METHODS = {
    "full_softmax": Method(
        False,
        False,
        FULL_RATE,
        "every weight trains; 2e-4 over 5e-5 (0.465) and 1e-4 (0.537): "
        "0.588 on validation",
    ),
    "full_crf": Method(
        True,
        False,
        FULL_RATE,
        f"every weight trains at {FULL_RATE:g} but the CRF transitions, "
        f"which train at {CRF_RATE_FACTOR:g}× that (a `LayerwiseOptimizer` "
        "with two groups); the CRF runs over words, IOB2's impossible "
        "transitions forbidden",
    ),
    "lora_softmax": Method(
        False,
        True,
        LORA_RATE,
        f"LoRAConfig(rank={LORA_RANK}, alpha={2 * LORA_RANK}, "
        "targets=[kfinetune.peft.ALL_LINEAR]), the emissions head "
        "trainable: 0.583 on validation, against 0.561 at rank 8, 0.425 "
        "on query and value only (rank 16), 0.552 at 1e-3, 0.546 at 4e-3",
        rank=LORA_RANK,
        targets=peft.ALL_LINEAR,
    ),
    "lora_crf": Method(
        True,
        True,
        LORA_RATE,
        "LoRA as above, emissions and CRF trainable, all at 2e-3",
        rank=LORA_RANK,
        targets=peft.ALL_LINEAR,
    ),
    # LoRA's variants at plain LoRA's settings (rank, targets, rate): the
    # comparison the method guide draws on.
    **{
        f"{name}_softmax": Method(
            False,
            True,
            LORA_RATE,
            f"as lora_softmax, with LoRAConfig({arguments})",
            rank=LORA_RANK,
            targets=peft.ALL_LINEAR,
            variant=variant,
        )
        for name, arguments, variant in (
            ("dora", "use_dora=True", {"use_dora": True}),
            ("rslora", "use_rslora=True", {"use_rslora": True}),
            ("pissa", 'init="pissa"', {"init": "pissa"}),
        )
    },
    # rsLoRA scales by alpha / sqrt(rank) = 8 at rank 16, four times
    # LoRA's alpha / rank = 2: at LoRA's rate its first updates are four
    # times larger, and it diverged (entity F1 0.000). A quarter of the
    # rate starts it where LoRA starts.
    "rslora_softmax_lr5e-04": Method(
        False,
        True,
        LORA_RATE / 4,
        "as rslora_softmax at a quarter of LoRA's rate (rsLoRA's scale is "
        "4 times LoRA's at rank 16)",
        rank=LORA_RANK,
        targets=peft.ALL_LINEAR,
        variant={"use_rslora": True},
    ),
    # PiSSA's factors start as the top singular part of each kernel, not
    # at zero: steps of LoRA's size move the kernels' main directions, and
    # at LoRA's rate it diverged (entity F1 0.000). Full fine-tuning's rate
    # suits a method that trains the kernels' main part.
    "pissa_softmax_lr2e-04": Method(
        False,
        True,
        FULL_RATE,
        "as pissa_softmax at full fine-tuning's rate",
        rank=LORA_RANK,
        targets=peft.ALL_LINEAR,
        variant={"init": "pissa"},
    ),
}

# Settings tried for LoRA on this task (`--tune`: scored on validation
# tweets), not run by default.
CANDIDATES = {
    f"lora_r{rank}_{where}_lr{rate:g}_e{epochs}": Method(
        False,
        True,
        rate,
        f"LoRA r={rank} on {where}, {epochs} epochs",
        rank=rank,
        targets=peft.ALL_LINEAR if where == "all" else None,
        epochs=epochs,
    )
    for rank in (8, 16)
    for where in ("qv", "all")
    for rate in (1e-3, 2e-3, 4e-3)
    for epochs in (2, 4)
}
CANDIDATES.update(
    {
        f"full_softmax_lr{rate:g}_e{epochs}": Method(
            False,
            False,
            rate,
            f"full fine-tuning at {rate:g}, {epochs} epochs",
            epochs=epochs,
        )
        for rate in (5e-5, 1e-4, 2e-4)
        for epochs in (2, 4)
    }
)


def _optimizer(model, method, steps):
    def schedule(peak):
        return keras.optimizers.schedules.PolynomialDecay(
            peak, decay_steps=steps, end_learning_rate=0.0
        )

    if not (method.crf and not method.lora):
        return keras.optimizers.AdamW(schedule(method.learning_rate))
    groups = optimizers.layer_groups(
        model, {"encoder": r"(?!crf/).*", "crf": r"crf/.*"}
    )
    # The top group (the CRF) trains at the inner rate, the encoder at
    # 1 / CRF_RATE_FACTOR of it.
    return optimizers.LayerwiseOptimizer(
        keras.optimizers.AdamW(
            schedule(method.learning_rate * CRF_RATE_FACTOR)
        ),
        groups,
        decay=1.0 / CRF_RATE_FACTOR,
    )


def run(method, seed, epochs, tokenizer, limit=None, tune=False, task="case"):
    """Trains and evaluates one tagger with one seed.

    With `tune`, it evaluates on 500 validation tweets instead of the test
    tweets: settings are chosen there.

    Returns:
        A JSON-ready dict of the run's measurements.
    """
    keras.utils.set_random_seed(seed)
    epochs = method.epochs or epochs
    tag_names = TASKS[task][0]
    splits = kfinetune.data.tweet_tagging(
        task,
        seed=seed,
        train_size=TRAIN_SIZE,
        validation_size=VALIDATION_SIZE if tune else 0,
        test_size=TEST_SIZE,
    )
    train_words, train_tags = (
        splits["train"].sentences,
        splits["train"].tags,
    )
    tested = splits["validation" if tune else "test"]
    test_words, test_tags = list(tested.sentences), list(tested.tags)
    if limit is not None:
        test_words = test_words[: limit * BATCH_SIZE]
        test_tags = test_tags[: limit * BATCH_SIZE]
    train = kfinetune.data.align_tags(
        train_words, train_tags, tokenizer, tag_names, SEQUENCE_LENGTH
    )
    test = kfinetune.data.align_tags(
        test_words, test_tags, tokenizer, tag_names, SEQUENCE_LENGTH
    )
    # The CRF's chain runs over words (each word's first piece), with the
    # transitions IOB2 forbids (O then I-NAME, ...) forbidden.
    constraints = (
        kfinetune.data.tag_constraints(tag_names) if method.crf else None
    )
    model = presets.token_classifier(
        len(tag_names),
        sequence_length=SEQUENCE_LENGTH,
        crf=method.crf,
        constraints=constraints,
    )
    if method.lora:
        head = ["emissions", "crf"] if method.crf else ["emissions"]
        model = peft.apply(
            model,
            peft.LoRAConfig(
                rank=method.rank,
                alpha=2 * method.rank,
                targets=None if method.targets is None else [method.targets],
                trainable=head,
                **method.variant,
            ),
        )
    dataset = (
        train.dataset(sample_weights=not method.crf, word_mask=method.crf)
        .shuffle(len(train.labels), seed=seed)
        .batch(BATCH_SIZE)
    )
    if limit is not None:
        dataset = dataset.take(limit)
    steps = epochs * int(dataset.cardinality())
    if method.crf:
        loss = layers.CRFLoss()
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        optimizer=_optimizer(model, method, steps),
        loss=loss,
        jit_compile=True,
    )
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    start = time.perf_counter()
    model.fit(dataset, epochs=epochs, shuffle=False, verbose=0)
    fit_seconds = time.perf_counter() - start
    predictions = model.predict(
        test.inputs_for(model), batch_size=BATCH_SIZE, verbose=0
    )
    scores = evaluation.sequence_labelling_report(
        test_tags, test.to_words(predictions)
    )
    per_type = {
        name: scores.f1[i] for i, name in enumerate(scores.entity_types)
    }
    return {
        "seed": seed,
        "epochs": epochs,
        "trainable_params": trainable,
        "train_sentences": len(train_words),
        "test_sentences": len(test_words),
        "test_entities": int(sum(scores.support)),
        "entity_f1": scores.micro_f1,
        "type_f1": {
            name[2:]: per_type.get(name[2:], 0.0)
            for name in tag_names
            if name.startswith("B-")
        },
        "token_accuracy": scores.token_accuracy,
        "fit_seconds": fit_seconds,
    }


def summarise(method, runs):
    """One table row: means ± standard deviations over the seeds."""

    def cell(key):
        return harness.format_mean_std([r[key] for r in runs])

    training = "full"
    if method.lora:
        variant = ", ".join(f"{k}={v!r}" for k, v in method.variant.items())
        training = f"LoRA r={method.rank}"
        if variant:
            training += f" ({variant})"
    return {
        "head": "CRF" if method.crf else "softmax",
        "training": training,
        "learning rate": f"{method.learning_rate:g}",
        "trainable weights": f"{runs[0]['trainable_params']:,}",
        "epochs": runs[0]["epochs"],
        "entity F1": cell("entity_f1"),
        **{
            f"{kind} F1": harness.format_mean_std(
                [r["type_f1"][kind] for r in runs]
            )
            for kind in runs[0]["type_f1"]
        },
        "token accuracy": cell("token_accuracy"),
        "fit (s)": f"{np.mean([r['fit_seconds'] for r in runs]):.0f}",
        "measured": datetime.date.today().isoformat(),
        "note": method.note,
        "runs": runs,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tagging",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=[*METHODS, *CANDIDATES],
        default=list(METHODS),
    )
    parser.add_argument("--task", choices=list(TASKS), default="case")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--limit",
        type=int,
        help="train on at most this many batches per epoch and test on "
        "this many batches (smoke runs; the result is marked)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the rows of the methods not run from the last results "
        "(each row says when it was measured)",
    )
    parser.add_argument(
        "--tune",
        action="store_true",
        help="score on 500 validation tweets instead of the test tweets, "
        "and write nothing (for choosing settings)",
    )
    args = parser.parse_args(argv)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    tokenizer = keras_hub.models.BertTokenizer.from_preset(
        str(presets.minilm_path())
    )
    results = {}
    name = "tagging" if args.task == "case" else f"tagging_{args.task}"
    path = harness.RESULTS_DIR / f"{name}.json"
    if args.keep and path.exists():
        previous = json.loads(path.read_text())
        measured = previous["machine"]["date_utc"][:10]
        for method_name, row in previous["results"].items():
            if method_name not in args.methods:
                results[method_name] = {"measured": measured, **row}
    for method_name in args.methods:
        method = METHODS.get(method_name) or CANDIDATES[method_name]
        runs = []
        for seed in args.seeds:
            result = run(
                method,
                seed,
                args.epochs,
                tokenizer,
                args.limit,
                args.tune,
                args.task,
            )
            runs.append(result)
            types = ", ".join(
                f"{kind} {value:.3f}"
                for kind, value in result["type_f1"].items()
            )
            print(
                f"{method_name} seed {seed}: entity F1 "
                f"{result['entity_f1']:.3f} ({types}), token accuracy "
                f"{result['token_accuracy']:.3f}, fit "
                f"{result['fit_seconds']:.0f} s",
                flush=True,
            )
        results[method_name] = summarise(method, runs)
    payload = {
        "description": harness.description(__doc__),
        "parameters": {
            "model": "all-MiniLM-L6-v2 (token_classifier)",
            "data": f"{DATA[args.task]} in "
            f"tweet_sentiment(classes=3, seed=seed): {TRAIN_SIZE} train, "
            f"{TEST_SIZE} test tweets, lowercased, shouting left out",
            "batch_size": BATCH_SIZE,
            "sequence_length": SEQUENCE_LENGTH,
            "optimizer": "AdamW, linear decay to 0 over the run",
            "jit_compile": True,
            "epochs": args.epochs,
            "seeds": args.seeds,
            "limit": args.limit,
        },
        "results": results,
    }
    if args.tune:
        print(report.render_results(name, payload))
        return
    harness.write_json(name, payload)
    print(report.render_results("tagging", payload))


if __name__ == "__main__":
    main()
