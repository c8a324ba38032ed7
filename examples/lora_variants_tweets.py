"""LoRA's variants on the bundled MiniLM: DoRA with rsLoRA's scale, PiSSA
initialisation, LoRA+ learning rates; a few batches of tweets each, then
merge, save and write the adapters in PEFT's format.

    python examples/lora_variants_tweets.py

Each variant fits 12 batches of 32 tweets (a smoke run, not a benchmark:
the quality runs are `benchmarks/`).
"""

import keras
import numpy as np

import kfinetune as kft

keras.utils.set_random_seed(0)
data = kft.data.tweet_sentiment(classes=2, seed=0)
train = data.train.batch(32).take(12)
texts = np.array(["what a great day", "this is awful"])
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

VARIANTS = {
    # DoRA: magnitude and direction; rsLoRA: scale alpha / sqrt(rank).
    "dora_rslora": kft.peft.LoRAConfig(
        rank=8, alpha=16, use_dora=True, use_rslora=True
    ),
    # PiSSA: A and B start at the kernel's principal part, which leaves
    # the kernels (the residual stays there; outputs unchanged).
    "pissa": kft.peft.LoRAConfig(rank=8, alpha=8, init="pissa"),
}
for name, config in VARIANTS.items():
    model = kft.presets.text_classifier(num_classes=2, sequence_length=64)
    before = model.predict(texts, verbose=0)
    model = kft.peft.apply(model, config)
    np.testing.assert_allclose(
        model.predict(texts, verbose=0), before, atol=1e-4
    )
    # LoRA+: B trains at 16 times A's learning rate.
    optimizer = kft.optimizers.lora_plus(
        keras.optimizers.AdamW(5e-4), model, ratio=16
    )
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    history = model.fit(train, epochs=1, verbose=0)
    print(f"{name}: train accuracy {history.history['accuracy'][-1]:.3f}")

    trained = model.predict(texts, verbose=0)
    kft.peft.save(model, f"/tmp/{name}.adapter.h5")
    # PEFT's format; a PiSSA adapter is converted to a plain LoRA of rank
    # 2 × 8 relative to the original MiniLM, which PyTorch users have.
    kft.peft.save_hf(
        model, f"/tmp/{name}_peft", convert_to_lora=config.init == "pissa"
    )
    kft.peft.merge(model)
    np.testing.assert_allclose(
        model.predict(texts, verbose=0), trained, atol=1e-4
    )
    print(
        f"{name}: merged, saved to /tmp/{name}.adapter.h5 and /tmp/{name}_peft"
    )
