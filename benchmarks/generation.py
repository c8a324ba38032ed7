"""Generation quality on real tweets: full fine-tuning and the five
parameter-efficient methods on a small BART, over seeds.

**The task: case restoration as sequence to sequence**, translation-style.
The source is a tweet lowercased, the target the tweet as its author wrote
it ("@united my flight to ord was cancelled" → "@united my flight to ORD
was Cancelled"). The target is a function of the source plus knowledge of
English and of the tweets (names, airport codes, sentence starts, "I"), so
the task is learnable, and every method is scored on the same text. A
causal LM completing tweets was the other candidate; it was not chosen
because its pretraining task and its fine-tuning task would be the same
(predict the next tweet token), leaving nothing new for the methods to
learn.

**The base model.** No pretrained generator installs here, so the
benchmark makes one: a keras-hub `BartSeq2SeqLM` (2 encoder and 2 decoder
layers, hidden size 64, 4 heads, feed-forward 256, dropout 0.1, 64
positions) over a byte-level `BartTokenizer` (the 256 bytes as GPT-2's
byte symbols and one merge) is **pretrained** from random weights, every
weight training, as a BART denoiser on the train tweets with their casing:
15 % of the words are replaced by `<mask>` (a run of masked words by one)
and the model writes the tweet back. It learns to copy the source and to
fill words in, but never sees a lowercased source, so before fine-tuning
it copies the lowercase text (the `base` row). The weights are cached under
`benchmarks/results/` (the file name holds a digest of the pretraining
settings; `--rebuild-base` retrains it). A base that has not learned to
copy (its chrF below half the `copy` row's) stops the run before any
fine-tuning: pretrain longer with `--pretraining-epochs`.

**Fine-tuning.** Each method starts from the cached base and trains on
2,000 case-restoration pairs drawn from the train tweets (a new draw per
seed; the pretraining saw these tweets, with their casing, as denoising
targets), batch 32, AdamW with a 6 % warm-up and linear decay to 0.
The learning rates are set a priori, starting from those measured on
MiniLM ([Which method, which learning rate](choosing-a-method.md)), not
tuned on this task: the notes under the table say how. The 500
test tweets (and 300 validation tweets) are never seen in pretraining or
fine-tuning. Tweets are cut to the words that fit in 60 bytes.

**Scores** on the test tweets: chrF2 (character n-gram F-score, case
sensitive, as sacrebleu) and exact match (the whole tweet restored) of
what greedy `generate()` writes, and the teacher-forced token accuracy
and perplexity of the targets
(`kfinetune.evaluation.evaluate_language_model`). `copy` scores the
lowercased source itself; `base` is the pretrained model before
fine-tuning. A method **learns** when its mean chrF beats the base's by
more than 1 point and by more than twice its standard deviation over
seeds. The validation loss after every epoch (epoch 0: before
fine-tuning) is drawn per method, mean ± std over seeds, in
`docs/img/generation_curves.png`.

    python -m benchmarks.generation [--methods full lora adapter ia3
        prefix prompt] [--seeds 0 1 2] [--epochs 6] [--rebuild-base]
        [--pretraining-epochs 10] [--quick]

`--quick` is a smoke run: a base pretrained for one epoch on 1,000
tweets into a temporary folder, one seed, 128 fine-tuning pairs for one
epoch, 32 test tweets; nothing is written to `benchmarks/results/` or
`docs/img/`.
"""

import argparse
import dataclasses
import datetime
import hashlib
import json
import logging
import pathlib
import tempfile
import time

import keras
import keras_hub
import numpy as np

import kfinetune
from benchmarks import harness
from benchmarks import report
from kfinetune import evaluation
from kfinetune import peft
from kfinetune import plotting

FIGURE = (
    pathlib.Path(__file__).parent.parent
    / "docs"
    / "img"
    / "generation_curves.png"
)
SEQUENCE_LENGTH = 64
# The encoder adds `<s>` and `</s>`, the decoder `</s> <s>` and `</s>`:
# 60 bytes of text fit both.
MAX_BYTES = 60
TEST_SIZE = 500
VALIDATION_SIZE = 300
TRAIN_SIZE = 16000
FINE_TUNE_SIZE = 2000
BATCH_SIZE = 32
EPOCHS = 6
WARMUP_FRACTION = 0.06
MODEL = {
    "num_layers": 2,
    "num_heads": 4,
    "hidden_dim": 64,
    "intermediate_dim": 256,
    "dropout": 0.1,
    "max_sequence_length": SEQUENCE_LENGTH,
}
PRETRAINING = {
    "epochs": 10,
    "batch_size": 32,
    "learning_rate": 1e-3,
    "mask_rate": 0.15,
    "seed": 0,
}
# A method "learns" when its chrF beats the base's by more than this many
# points (and by twice its std over seeds).
LEARNING_MARGIN = 1.0


@dataclasses.dataclass(frozen=True)
class Method:
    """One way of fine-tuning the base.

    Attributes:
        config: a zero-argument callable returning the `kfinetune.peft`
            config, or `None` for full fine-tuning.
        learning_rate: AdamW's peak learning rate.
        note: what trains, and where the learning rate comes from.
    """

    config: object
    learning_rate: float
    note: str


METHODS = {
    "full": Method(
        None,
        5e-4,
        "every weight trains, at half the pretraining rate (a small model "
        "just pretrained at 1e-3 takes a far higher rate than MiniLM's "
        "5e-5)",
    ),
    "lora": Method(
        lambda: peft.LoRAConfig(rank=8, alpha=16, targets=[peft.ALL_LINEAR]),
        5e-3,
        "LoRAConfig(rank=8, alpha=16, targets=[ALL_LINEAR]): every dense "
        "layer of the encoder and decoder blocks, cross-attention included "
        "(query and value alone lagged on token tasks); 5e-3, 10x full's "
        "rate (MiniLM's LoRA ran at 2e-3, 40x its full rate)",
    ),
    "adapter": Method(
        lambda: peft.AdapterConfig(size=32),
        5e-3,
        "AdapterConfig(size=32), Houlsby placement, the rate of LoRA",
    ),
    "ia3": Method(
        lambda: peft.IA3Config(),
        3e-2,
        "IA3Config(): keys, values and the feed-forward activations "
        "rescaled, cross-attention included; MiniLM's rate",
    ),
    "prefix": Method(
        lambda: peft.PrefixConfig(length=16, hidden=64),
        3e-3,
        "PrefixConfig(length=16, hidden=64): prefixes in the encoder's "
        "self-attention and the decoder's self- and cross-attention, "
        "trained through the MLP (its weights are counted; `merge` folds "
        "them into 16 keys and values per layer); 3e-3, between MiniLM's "
        "1e-3 and LoRA's rate here",
    ),
    "prompt": Method(
        lambda: peft.PromptConfig(length=16, init="vocab"),
        3e-2,
        "PromptConfig(length=16, init='vocab'): 16 soft prompts before the "
        "source, in the encoder (as Hugging Face PEFT puts them); MiniLM's "
        "rate",
    ),
}


def byte_tokenizer():
    """A BART tokenizer over the 256 bytes, as GPT-2's byte symbols.

    keras-hub 0.32's byte-pair tokenizers need at least one merge; `<mask>`
    in a text is read as the mask token.
    """
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    symbols = [chr(b) for b in printable]
    symbols += [chr(256 + i) for i in range(256 - len(printable))]
    tokens = ["<s>", "<pad>", "</s>", "<mask>", *symbols, "Ġt"]
    return keras_hub.models.BartTokenizer(
        {token: i for i, token in enumerate(tokens)},
        ["Ġ t"],
        unsplittable_tokens=["<mask>"],
    )


def shorten(text, limit=MAX_BYTES):
    """The words of `text` that fit in `limit` UTF-8 bytes."""
    while len(text.encode()) > limit:
        if " " in text:
            text = text.rsplit(" ", 1)[0]
        else:
            text = text.encode()[:limit].decode(errors="ignore")
    return text


def tweets(train_size, validation_size, test_size):
    """Shortened train, validation and test tweets of one fixed split."""
    data = kfinetune.data.tweet_sentiment(
        classes=3,
        seed=0,
        train_size=train_size,
        validation_size=validation_size,
        test_size=test_size,
    )
    # A tweet whose first word is longer than the limit would be empty.
    return {
        name: [text for text in map(shorten, split.texts) if text]
        for name, split in data.splits.items()
    }


def case_pairs(texts):
    """`(lowercased, as written)` pairs."""
    return [(text.lower(), text) for text in texts]


def corrupt(text, rng, rate):
    """BART's text infilling at the word level: each word is masked with
    probability `rate`, and a run of masked words becomes one `<mask>`."""
    words = text.split(" ")
    masked = rng.random(len(words)) < rate
    kept = []
    for word, mask in zip(words, masked, strict=True):
        if not mask:
            kept.append(word)
        elif not kept or kept[-1] != "<mask>":
            kept.append("<mask>")
    return " ".join(kept)


def build_model(tokenizer):
    """The architecture of the base, randomly initialised, without a
    preprocessor (it trains on token-id rows)."""
    backbone = keras_hub.models.BartBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), **MODEL
    )
    return keras_hub.models.BartSeq2SeqLM(backbone, preprocessor=None)


def _rows(pairs, tokenizer):
    return kfinetune.data.seq2seq(
        pairs, tokenizer, SEQUENCE_LENGTH, SEQUENCE_LENGTH
    )


def _schedule(learning_rate, steps):
    return kfinetune.optimizers.schedules.WarmupLinearDecay(
        learning_rate,
        warmup_steps=max(1, round(WARMUP_FRACTION * steps)),
        total_steps=steps,
    )


def base_path(settings):
    """The cache file of the base pretrained with `settings`."""
    digest = hashlib.sha1(
        json.dumps({"model": MODEL, **settings}, sort_keys=True).encode()
    ).hexdigest()[:10]
    return harness.RESULTS_DIR / f"generation_base_{digest}.weights.h5"


def pretrain(texts, validation, tokenizer, settings, path):
    """Trains the base as a denoiser of `texts` and saves its weights.

    Returns:
        A JSON-ready dict: the validation loss per epoch and the seconds.
    """
    keras.utils.set_random_seed(settings["seed"])
    rng = np.random.default_rng(settings["seed"])
    model = build_model(tokenizer)
    batches = -(-len(texts) // settings["batch_size"])
    model.compile(
        optimizer=keras.optimizers.AdamW(
            _schedule(settings["learning_rate"], settings["epochs"] * batches)
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rate = settings["mask_rate"]
    held_out = _rows(
        [(corrupt(t, rng, rate), t) for t in validation], tokenizer
    ).dataset()
    losses = []
    start = time.perf_counter()
    for epoch in range(settings["epochs"]):
        # A new corruption of every tweet each epoch.
        rows = _rows([(corrupt(t, rng, rate), t) for t in texts], tokenizer)
        history = model.fit(
            rows.dataset()
            .shuffle(len(texts), seed=settings["seed"] + epoch)
            .batch(settings["batch_size"]),
            validation_data=held_out.batch(128),
            epochs=1,
            shuffle=False,
            verbose=0,
        )
        losses.append(history.history["val_loss"][0])
        print(
            f"  pretraining epoch {epoch + 1}/{settings['epochs']}: "
            f"validation loss {losses[-1]:.4f} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    model.backbone.save_weights(path)
    return {
        "validation_loss": [round(loss, 4) for loss in losses],
        "seconds": round(time.perf_counter() - start),
    }


def _cached_pretraining(path):
    """What the last results say of the cached base's pretraining."""
    previous = harness.RESULTS_DIR / "generation.json"
    if previous.exists():
        parameters = json.loads(previous.read_text())["parameters"]
        if parameters.get("base_weights") == path.name:
            return parameters.get("pretraining_run")
    return None


def load_base(tokenizer, path):
    model = build_model(tokenizer)
    model.backbone.load_weights(path)
    return model


def restore(model, preprocessor, sources):
    """The greedy restorations of `sources` (lowercased tweets)."""
    # The rows train the model without a preprocessor; `generate` reads and
    # writes text.
    model.preprocessor = preprocessor
    try:
        return model.generate(sources, max_length=SEQUENCE_LENGTH)
    finally:
        model.preprocessor = None


def scores(hypotheses, references):
    """chrF2 and exact match of restorations."""
    exact = np.mean(
        [h == r for h, r in zip(hypotheses, references, strict=True)]
    )
    return {
        "chrf": evaluation.corpus_chrf(hypotheses, references),
        "exact_match": float(exact),
    }


def _examples(sources, hypotheses, targets, count=3):
    triples = zip(sources, hypotheses, targets, strict=True)
    return [
        {"source": s, "output": h, "target": t}
        for s, h, t in list(triples)[:count]
    ]


def run(name, seed, context, epochs):
    """Fine-tunes the base with one method and one seed.

    Returns:
        A JSON-ready dict of the run's measurements.
    """
    method = METHODS[name]
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    train = context["train_pairs"]
    picks = rng.choice(len(train), context["fine_tune_size"], replace=False)
    rows = _rows([train[i] for i in picks], context["tokenizer"])
    model = load_base(context["tokenizer"], context["base_path"])
    if method.config is not None:
        model = peft.apply(model, method.config())
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    total = sum(int(np.prod(w.shape)) for w in model.weights)
    dataset = (
        rows.dataset()
        .shuffle(len(picks), seed=seed)
        .batch(BATCH_SIZE, drop_remainder=False)
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(
            _schedule(method.learning_rate, epochs * len(dataset))
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        sampler="greedy",
    )
    validation = context["validation_rows"].dataset().batch(128)
    start = time.perf_counter()
    curve = [model.evaluate(validation, verbose=0, return_dict=True)["loss"]]
    history = model.fit(
        dataset,
        validation_data=validation,
        epochs=epochs,
        shuffle=False,
        verbose=0,
    )
    curve += [float(v) for v in history.history["val_loss"]]
    fit_seconds = time.perf_counter() - start
    language_model = evaluation.evaluate_language_model(
        model, context["test_rows"].dataset().batch(128)
    )
    sources, targets = zip(*context["test_pairs"], strict=True)
    start = time.perf_counter()
    hypotheses = restore(model, context["preprocessor"], list(sources))
    decode_seconds = time.perf_counter() - start
    return {
        "seed": seed,
        "trainable_params": trainable,
        "total_params": total,
        **scores(hypotheses, list(targets)),
        "token_accuracy": language_model.token_accuracy,
        "perplexity": language_model.perplexity,
        "validation_loss": curve,
        "fit_seconds": fit_seconds,
        "decode_seconds": decode_seconds,
        "examples": _examples(sources, hypotheses, targets),
    }


def baselines(context):
    """The raw scores of the `copy` and `base` rows: the lowercased source
    as it is, and the pretrained base before any fine-tuning."""
    sources, targets = zip(*context["test_pairs"], strict=True)
    model = load_base(context["tokenizer"], context["base_path"])
    model.compile(sampler="greedy")
    language_model = evaluation.evaluate_language_model(
        model, context["test_rows"].dataset().batch(128)
    )
    hypotheses = restore(model, context["preprocessor"], list(sources))
    return {
        "copy": scores(list(sources), list(targets)),
        "base": {
            **scores(hypotheses, list(targets)),
            "token_accuracy": language_model.token_accuracy,
            "perplexity": language_model.perplexity,
            "examples": _examples(sources, hypotheses, targets),
        },
    }


BASELINE_NOTES = {
    "copy": "no model: the lowercased source as the output",
    "base": "the pretrained denoiser before fine-tuning",
}


def baseline_row(name, raw, base_chrf):
    """A baseline as a table row with the methods' columns."""

    def number(key, digits=3, scale=1.0):
        return f"{scale * raw[key]:.{digits}f}" if key in raw else ""

    return {
        "trainable weights": "0",
        "trainable %": "0",
        "learning rate": "",
        "chrF": number("chrf", 1),
        "Δ chrF vs base": f"{raw['chrf'] - base_chrf:.1f}",
        "exact match %": number("exact_match", 1, 100.0),
        "token accuracy": number("token_accuracy"),
        "perplexity": number("perplexity"),
        "verdict": "",
        "fit (s)": "",
        "measured": datetime.date.today().isoformat(),
        "note": BASELINE_NOTES[name],
        "scores": raw,
    }


def verdict(runs, base_chrf):
    """Whether the runs' chrF beats the base's, in words."""
    mean, std = harness.mean_std([r["chrf"] for r in runs])
    gain = mean - base_chrf
    if gain > LEARNING_MARGIN and gain > 2 * std:
        return "learns"
    if gain < -LEARNING_MARGIN:
        return "does not learn: worse than the base"
    return "does not learn: within noise of the base"


def summarise(name, runs, base_chrf):
    """One table row: means ± standard deviations over the seeds."""
    method = METHODS[name]

    def cell(key, digits=3, scale=1.0):
        values = [scale * r[key] for r in runs]
        return harness.format_mean_std(values, digits)

    share = runs[0]["trainable_params"] / runs[0]["total_params"]
    return {
        "trainable weights": f"{runs[0]['trainable_params']:,}",
        "trainable %": f"{100 * share:.3g}",
        "learning rate": f"{method.learning_rate:g}",
        "chrF": cell("chrf", 1),
        "Δ chrF vs base": harness.format_mean_std(
            [r["chrf"] - base_chrf for r in runs], 1
        ),
        "exact match %": cell("exact_match", 1, 100.0),
        "token accuracy": cell("token_accuracy"),
        "perplexity": cell("perplexity", 3),
        "verdict": verdict(runs, base_chrf),
        "fit (s)": f"{np.mean([r['fit_seconds'] for r in runs]):.0f}",
        "measured": datetime.date.today().isoformat(),
        "note": method.note,
        "runs": runs,
    }


def plot_curves(results, epochs, path):
    """Validation loss per epoch, one line per method, ± one std."""
    curves = {}
    for name, row in results.items():
        if "runs" not in row:
            continue
        losses = np.array([r["validation_loss"] for r in row["runs"]])
        stds = losses.std(axis=0, ddof=1) if len(losses) > 1 else None
        curves[name] = (losses.mean(axis=0), stds)
    return plotting.save_curves(
        path,
        list(range(epochs + 1)),
        curves,
        xlabel="epoch (0: the pretrained base, before fine-tuning)",
        ylabel="validation loss",
        title="Case restoration, small BART pretrained on tweets",
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.generation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--methods", nargs="+", choices=list(METHODS), default=list(METHODS)
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument(
        "--pretraining-epochs", type=int, default=PRETRAINING["epochs"]
    )
    parser.add_argument(
        "--rebuild-base",
        action="store_true",
        help="pretrain the base again even when its cached weights exist",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run that writes nothing (see the docstring)",
    )
    args = parser.parse_args(argv)
    # Every run builds a new model and so new tf.functions, which
    # TensorFlow warns about as retracing.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    start = time.perf_counter()

    settings = {**PRETRAINING, "epochs": args.pretraining_epochs}
    seeds, epochs, fine_tune_size = args.seeds, args.epochs, FINE_TUNE_SIZE
    sizes = (TRAIN_SIZE, VALIDATION_SIZE, TEST_SIZE)
    figure = FIGURE
    if args.quick:
        settings["epochs"] = 1
        seeds, epochs, fine_tune_size = seeds[:1], 1, 128
        sizes = (1000, 32, 32)
        scratch = pathlib.Path(tempfile.mkdtemp())
        path = scratch / "base.weights.h5"
        figure = scratch / "generation_curves.png"
    else:
        path = base_path(settings)
    texts = tweets(*sizes)
    tokenizer = byte_tokenizer()
    preprocessor = keras_hub.models.BartSeq2SeqLMPreprocessor(
        tokenizer,
        encoder_sequence_length=SEQUENCE_LENGTH,
        decoder_sequence_length=SEQUENCE_LENGTH,
    )
    pretraining = None
    if args.quick or args.rebuild_base or not path.exists():
        print(f"pretraining the base on {len(texts['train'])} tweets")
        pretraining = pretrain(
            texts["train"], texts["validation"], tokenizer, settings, path
        )
    else:
        print(f"the pretrained base: {path.relative_to(path.parents[2])}")
        pretraining = _cached_pretraining(path)
    context = {
        "tokenizer": tokenizer,
        "preprocessor": preprocessor,
        "base_path": path,
        "fine_tune_size": fine_tune_size,
        "train_pairs": case_pairs(texts["train"]),
        "test_pairs": case_pairs(texts["test"]),
        "validation_rows": _rows(case_pairs(texts["validation"]), tokenizer),
        "test_rows": _rows(case_pairs(texts["test"]), tokenizer),
    }
    raw = baselines(context)
    base_chrf = raw["base"]["chrf"]
    results = {
        name: baseline_row(name, scores, base_chrf)
        for name, scores in raw.items()
    }
    for name, scores in raw.items():
        print(
            f"{name}: chrF {scores['chrf']:.1f}, exact match "
            f"{100 * scores['exact_match']:.1f} %",
            flush=True,
        )
    print(f"  {raw['base']['examples'][0]}")
    if not args.quick and base_chrf < 0.5 * raw["copy"]["chrf"]:
        raise SystemExit(
            f"The pretrained base scores chrF {base_chrf:.1f}, below half "
            f"of copying the source ({raw['copy']['chrf']:.1f}): it has not "
            "learned to copy, and fine-tuning it would measure nothing. "
            "Pretrain longer: --pretraining-epochs N (the base is retrained "
            "when its settings change)."
        )
    for name in args.methods:
        runs = []
        for seed in seeds:
            result = run(name, seed, context, epochs)
            runs.append(result)
            print(
                f"{name} seed {seed}: chrF {result['chrf']:.1f}, exact "
                f"match {100 * result['exact_match']:.1f} %, token accuracy "
                f"{result['token_accuracy']:.3f}, perplexity "
                f"{result['perplexity']:.3f}, {result['trainable_params']:,} "
                f"trainable, fit {result['fit_seconds']:.0f} s, decode "
                f"{result['decode_seconds']:.0f} s",
                flush=True,
            )
            example = result["examples"][0]
            print(f"  {example['source']!r} -> {example['output']!r}")
        results[name] = summarise(name, runs, base_chrf)
    seconds = time.perf_counter() - start
    print(
        f"{seconds:.0f} s in all; figure {plot_curves(results, epochs, figure)}"
    )
    payload = {
        "description": harness.description(__doc__),
        "parameters": {
            "model": f"BartSeq2SeqLM {MODEL}, byte-level BartTokenizer",
            "pretraining": settings,
            "pretraining_run": pretraining,
            "base_weights": path.name,
            "data": "tweet_sentiment(classes=3, seed=0), tweets cut to "
            f"{MAX_BYTES} bytes: train {sizes[0]}, validation {sizes[1]}, "
            f"test {sizes[2]}; fine-tuning draws {fine_tune_size} "
            "train tweets per seed",
            "batch_size": BATCH_SIZE,
            "epochs": epochs,
            "sequence_length": SEQUENCE_LENGTH,
            "optimizer": f"AdamW, {WARMUP_FRACTION:.0%} warm-up, linear "
            "decay to 0",
            "seeds": seeds,
            "seconds": round(seconds),
            "limit": "--quick" if args.quick else None,
        },
        "results": results,
    }
    if args.quick:
        print(report.render_results("generation", payload))
        return
    payload["description"] += (
        "\n\nGuide: [Fine-tuning generators](generators.md).\n\n"
        "![Validation loss per epoch](img/generation_curves.png)"
    )
    harness.write_json("generation", payload)
    print(report.render_results("generation", payload))


if __name__ == "__main__":
    main()
