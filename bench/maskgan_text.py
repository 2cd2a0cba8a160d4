"""MaskGAN on the bundled text corpus: maximum likelihood only vs MaskGAN, same seed, data and epochs.

Both runs use `configs/maskgan/text.toml` (24-character windows, a contiguous missing half) through
`kgen.train`, for the same number of epochs: the MLE baseline (`adversarial_epochs = 0`) trains by
in-filling likelihood throughout; MaskGAN trains `pretrain_epochs` by likelihood, then actor-critic.
On the test split, each model reports:

- `masked_nll_per_token`: the NLL per missing token (teacher forcing, masks drawn with seed 0);
- `filled_word_validity`: for in-fills of the test windows, the share of words that hold a filled
  character which are corpus words (the in-filling's own quality: visible words are copied);
- sample quality proxies, for in-fills of the test windows (the recipe's masks, seed 1) and for
  unconditional samples (fully masked windows, seed 1): `word_validity`, the share of whole words
  (letters between spaces/punctuation, the window's cut-off first and last words dropped) that are
  words of the corpus; `distinct_3`, the share of unique character 3-grams among all 3-grams of the
  samples (diversity: a collapsed generator scores low); and the same figures for the test data.

GANs trade likelihood for sample quality, so the NLL is expected to rise a little under MaskGAN; the
paper's claim is about sample quality. `--actor-lr` overrides the recipe's actor_learning_rate.
Writes `bench/results/maskgan_text.json`.

    python bench/maskgan_text.py            # a few minutes on 2 shared CPU cores (TensorFlow)
"""

import argparse
import json
import os
import pathlib
import platform
import re
import tempfile
import time

import keras
import numpy as np

import kgen
from kgen import config as config_lib

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
CORPUS = pathlib.Path(kgen.__file__).resolve().parent / "data" / "files" / "text_corpus.txt"


def machine():
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "backend": keras.config.backend()}


def words(text):
    return re.findall(r"[a-z]+", text.lower())


def word_validity(texts, vocabulary):
    """Share of inner words (not cut by the window's ends) that are corpus words."""
    valid = total = 0
    for text in texts:
        inner = words(text)[1:-1]
        total += len(inner)
        valid += sum(w in vocabulary for w in inner)
    return valid / max(total, 1)


def filled_word_validity(texts, masks, vocabulary):
    """Share of words that hold at least one filled character (and are not cut by the window's ends)
    that are corpus words: char-level windows decode to one character a token."""
    valid = total = 0
    for text, mask in zip(texts, masks):
        if len(text) != len(mask):
            continue
        for match in re.finditer(r"[a-z]+", text.lower()):
            a, b = match.span()
            if a == 0 or b == len(text) or not mask[a:b].any():
                continue
            total += 1
            valid += match.group() in vocabulary
    return valid / max(total, 1)


def distinct(texts, n=3):
    grams = [t[i:i + n] for t in texts for i in range(len(t) - n + 1)]
    return len(set(grams)) / max(len(grams), 1)


def quality(texts, vocabulary):
    return {"word_validity": round(word_validity(texts, vocabulary), 4), "distinct_3": round(distinct(texts), 4)}


def run(adversarial, epochs, test, actor_lr=None):
    sets = [(["train", "epochs"], epochs)]
    if actor_lr is not None:
        sets.append((["model", "actor_learning_rate"], actor_lr))
    if not adversarial:
        sets.append((["model", "adversarial_epochs"], 0))
    config = config_lib.resolve(model="maskgan", dataset="text", overrides=sets)
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model, _, last = kgen.train(config, run_dir=pathlib.Path(tmp) / "run", verbose=0)
    seconds = time.perf_counter() - start
    nll, count = model.masked_nll(test, seed=0)
    u = np.random.default_rng(1).uniform(size=test.shape).astype("float32")
    mask = keras.ops.convert_to_numpy(model.masks_from_uniforms(u)).astype("int32")
    fills = model.decode_sequences(model.infill(test, mask, seed=1))
    infill_quality = {**quality(fills, VOCAB),
                      "filled_word_validity": round(filled_word_validity(fills, mask, VOCAB), 4)}
    samples = model.decode_sequences(model.sample(len(test), seed=1))
    return model, {"masked_nll_per_token": round(nll, 4), "masked_perplexity": round(float(np.exp(nll)), 4),
                   "masked_tokens": count, "last_train_metrics": {k: round(float(v), 4) for k, v in last.items()},
                   "infill": infill_quality, "unconditional": quality(samples, VOCAB),
                   "examples_unconditional": samples[:5], "examples_infill": fills[:5],
                   "seconds": round(seconds, 1)}


VOCAB = set(words(CORPUS.read_text(encoding="utf-8")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=0, help="0: the recipe's")
    parser.add_argument("--actor-lr", type=float, default=None)
    parser.add_argument("--out", default=str(RESULTS / "maskgan_text.json"))
    args = parser.parse_args()
    recipe = config_lib.resolve(model="maskgan", dataset="text")
    epochs = args.epochs or recipe["train"]["epochs"]
    seq_len = recipe["data"]["seq_len"]
    test = kgen.load_dataset("text", split="test", seq_len=seq_len).x.astype("int32")
    results = {}
    for name, adv in (("mle", False), ("maskgan", True)):
        model, results[name] = run(adv, epochs, test, args.actor_lr)
        print(name, json.dumps({k: v for k, v in results[name].items() if not k.startswith("examples")}))
    data_texts = model.decode_sequences(test)
    out = {"benchmark": "maskgan_text", "recipe": "configs/maskgan/text.toml", "epochs": epochs,
           "pretrain_epochs": recipe["model"]["pretrain_epochs"],
           "actor_learning_rate": args.actor_lr or recipe["model"].get("actor_learning_rate"),
           "test_windows": int(len(test)),
           "data": quality(data_texts, VOCAB), **results,
           "nll_ratio_maskgan_over_mle": round(results["maskgan"]["masked_nll_per_token"]
                                               / results["mle"]["masked_nll_per_token"], 4),
           "machine": machine()}
    RESULTS.mkdir(exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
