"""LoRA instruction tuning of a GPT-2 causal LM on real tweets: the prompt
asks for a tweet's sentiment, the response is one word.

`kfinetune.data.instructions` makes the rows with the loss on the response
only (the prompt, the tweet included, is context, never a target),
`kfinetune.peft.LoRAConfig` trains rank-8 updates of every dense layer, and
`generate()` answers a few test prompts.

No pretrained generator installs here, so the model is a small randomly
initialised keras-hub `GPT2CausalLM` (2 layers, hidden size 64) over a
byte-level tokenizer: LoRA on a random model learns little more than the
answers' format and their frequencies, and what this script prints shows
that the pipeline runs, not what instruction tuning achieves. With
network, one line changes (see `model = ...` below) and the same code tunes
`gpt2_base_en`.

    python examples/causal_lm_lora_instructions.py
"""

import collections

import keras
import keras_hub

import kfinetune as kft

SEQUENCE_LENGTH = 128
EPOCHS = 3
PROMPT = "Tweet: {}\nIs it negative, neutral or positive?\nAnswer:"


def byte_tokenizer():
    """A GPT-2 tokenizer over the 256 bytes (GPT-2's byte symbols), and the
    one merge keras-hub's byte-pair tokenizers need."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    symbols = [chr(b) for b in printable]
    symbols += [chr(256 + i) for i in range(256 - len(printable))]
    # The end token goes last, as in GPT-2's own vocabulary: keras-hub pads
    # GPT-2 with id 0, and `generate` would take that padding for ends.
    tokens = [*symbols, "Ġt", "<|endoftext|>"]
    vocabulary = {token: i for i, token in enumerate(tokens)}
    return keras_hub.models.GPT2Tokenizer(vocabulary, ["Ġ t"])


def examples(split, names):
    """Prompt and response pairs; the response starts with a space, as
    GPT-2's byte pairs want a word that continues a line."""
    return [
        {"prompt": PROMPT.format(text[:60]), "response": f" {names[label]}"}
        for text, label in zip(split.texts, split.labels, strict=True)
    ]


data = kft.data.tweet_sentiment(
    classes=3, seed=0, train_size=3000, validation_size=200, test_size=100
)
splits = {
    name: examples(split, data.class_names)
    for name, split in data.splits.items()
}
preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
    byte_tokenizer(), sequence_length=SEQUENCE_LENGTH
)
keras.utils.set_random_seed(0)
# With network: model = kft.presets.causal_lm("gpt2_base_en",
#                                             sequence_length=128)
model = keras_hub.models.GPT2CausalLM(
    keras_hub.models.GPT2Backbone(
        vocabulary_size=preprocessor.tokenizer.vocabulary_size(),
        num_layers=2,
        num_heads=4,
        hidden_dim=64,
        intermediate_dim=128,
        max_sequence_length=SEQUENCE_LENGTH,
    ),
    preprocessor=preprocessor,
)
rows = {
    name: kft.data.instructions(pairs, preprocessor, SEQUENCE_LENGTH)
    for name, pairs in splits.items()
}
print(rows["train"].truncation)

config = kft.peft.LoRAConfig(rank=8, alpha=16, targets=[kft.peft.ALL_LINEAR])
model = kft.peft.apply(model, config)
kft.peft.summary(model)

# The rows are token ids already: the preprocessor comes back for
# `generate`, which reads and writes text.
model.preprocessor = None
train = rows["train"].dataset().shuffle(3000, seed=0).batch(32)
schedule = kft.optimizers.schedules.WarmupLinearDecay(
    3e-3, warmup_steps=10, total_steps=EPOCHS * len(train)
)
model.compile(
    optimizer=keras.optimizers.AdamW(schedule),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    weighted_metrics=["accuracy"],
    sampler="greedy",
)
model.fit(
    train,
    validation_data=rows["validation"].dataset().batch(64),
    epochs=EPOCHS,
    shuffle=False,
    verbose=2,
)
# Perplexity and token accuracy of the responses alone.
print(
    kft.evaluation.evaluate_language_model(
        model, rows["test"].dataset().batch(64)
    )
)

model.preprocessor = preprocessor
prompts = [pair["prompt"] for pair in splits["test"]]
answers = model.generate(prompts, max_length=SEQUENCE_LENGTH, strip_prompt=True)
truth = [pair["response"].strip() for pair in splits["test"]]
right = sum(a.strip() == t for a, t in zip(answers, truth, strict=True))
print(f"answers {collections.Counter(a.strip() for a in answers)}")
majority = collections.Counter(truth).most_common(1)[0][1]
print(f"right: {right} of {len(truth)}; always the commonest: {majority}")
for prompt, answer in list(zip(prompts, answers, strict=True))[:3]:
    print(f"{prompt}{answer}\n")

# Fold the updates into the kernels: generation at the base model's cost.
kft.peft.merge(model)
print(model.generate(prompts[:1], max_length=SEQUENCE_LENGTH))
