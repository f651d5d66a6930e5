"""Corpus to token ids to bucketed tf.data batches, through an on-disk shard cache.

The corpus is read once: pass one tokenizes to a text file and counts words, pass two writes int32 id shards.
Training then streams the shards, so memory does not grow with the corpus.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from chatbot import corpora
from chatbot.tokenizer import END_ID, START_ID, UNK_ID, Vocabulary

SHARD_PAIRS = 50_000
CACHE_VERSION = 1


def _is_valid(source, target, fraction):
    """Deterministic split by content, so the same pair lands on the same side in every run and resume."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b((" ".join(source) + "\t" + " ".join(target)).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") / 2**32 < fraction


def tokenize_corpus(data, fmt, tokenizer, settings, workdir, valid_data=None, valid_format="auto"):
    """Pass one: write train.tok and valid.tok ("source tokens<TAB>target tokens" lines). Returns the stats and
    a count of train words for the vocabulary."""
    import collections

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stats = corpora.CorpusStats()
    counts = collections.Counter()

    def pairs(path, f, st):
        dialogues = corpora.read_dialogues(path, f, stats=st)
        return corpora.prepare_pairs(dialogues, tokenizer, context_turns=settings.context_turns,
                                     max_source_len=settings.max_source_len,
                                     max_target_len=settings.max_target_len, stats=st)

    with open(workdir / "train.tok.tmp", "w", encoding="utf-8") as train, \
            open(workdir / "valid.tok.tmp", "w", encoding="utf-8") as valid:
        for source, target in pairs(data, fmt, stats):
            held_out = valid_data is None and _is_valid(source, target, settings.valid_fraction)
            if not held_out:
                counts.update(source)
                counts.update(target)
            (valid if held_out else train).write(" ".join(source) + "\t" + " ".join(target) + "\n")
        if valid_data is not None:
            valid_stats = corpora.CorpusStats()
            for source, target in pairs(valid_data, valid_format, valid_stats):
                valid.write(" ".join(source) + "\t" + " ".join(target) + "\n")
    corpora.require_pairs(stats)
    for name in ("train", "valid"):
        os.replace(workdir / f"{name}.tok.tmp", workdir / f"{name}.tok")
    return stats, counts


def _read_tok(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            source, target = line.rstrip("\n").split("\t")
            yield source.split(), target.split()


def build_vocab(counts, settings):
    return Vocabulary.from_counts(counts, min_count=settings.min_count, max_size=settings.max_vocab)


def write_shards(workdir, vocab):
    """Pass two: ids into .npz shards (flat arrays plus offsets). Returns the manifest, also saved as JSON."""
    workdir = Path(workdir)
    manifest = {"version": CACHE_VERSION, "vocab_size": len(vocab)}
    for split in ("train", "valid"):
        shards, pairs, target_tokens, unknown, total = [], 0, 0, 0, 0
        buffer = []

        def flush():
            if not buffer:
                return
            name = f"{split}-{len(shards):05d}.npz"
            src = [np.asarray(s, np.int32) for s, _ in buffer]
            tgt = [np.asarray(t, np.int32) for _, t in buffer]
            tmp = workdir / (name + ".tmp")
            with open(tmp, "wb") as f:
                np.savez(f, source=np.concatenate(src), target=np.concatenate(tgt),
                         source_offsets=np.cumsum([0] + [len(s) for s in src]),
                         target_offsets=np.cumsum([0] + [len(t) for t in tgt]))
            os.replace(tmp, workdir / name)
            shards.append(name)
            buffer.clear()

        for source, target in _read_tok(workdir / f"{split}.tok"):
            s, t = vocab.encode(source), vocab.encode(target)
            unknown += s.count(UNK_ID) + t.count(UNK_ID)
            total += len(s) + len(t)
            target_tokens += len(t) + 1
            buffer.append((s, t))
            pairs += 1
            if len(buffer) >= SHARD_PAIRS:
                flush()
        flush()
        manifest[split] = {"shards": shards, "pairs": pairs, "target_tokens": target_tokens,
                           "unknown_rate": unknown / total if total else 0.0}
    tmp = workdir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, workdir / "manifest.json")
    return manifest


def bucket_boundaries(max_len):
    bounds, b = [], 6
    while b < max_len + 1:
        bounds.append(b)
        b = int(b * 1.4) + 1
    return bounds + [max_len + 2]


def _examples(workdir, shards, seed, epoch, shuffle):
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(shards)) if shuffle else range(len(shards))
    for k in order:
        with np.load(Path(workdir) / shards[k], allow_pickle=False) as z:
            src, so, tgt, to = z["source"], z["source_offsets"], z["target"], z["target_offsets"]
        for i in (rng.permutation(len(so) - 1) if shuffle else range(len(so) - 1)):
            target = tgt[to[i]:to[i + 1]]
            yield (src[so[i]:so[i + 1]], np.concatenate([[START_ID], target]).astype(np.int32),
                   np.concatenate([target, [END_ID]]).astype(np.int32))


def make_dataset(workdir, manifest, split, settings, epoch=0, shuffle=True, drop_remainder=True):
    """Batches of (source_ids, target_in_ids, target_out_ids), padded to the bucket boundary so XLA sees
    a handful of shapes. Same seed and epoch, same batches: that is what makes --resume exact."""
    shards = manifest[split]["shards"]
    spec = tf.TensorSpec([None], tf.int32)
    ds = tf.data.Dataset.from_generator(lambda: _examples(workdir, shards, settings.seed, epoch, shuffle),
                                        output_signature=(spec, spec, spec))
    bounds = bucket_boundaries(max(settings.max_source_len, settings.max_target_len))
    ds = ds.bucket_by_sequence_length(
        lambda s, ti, to: tf.maximum(tf.shape(s)[0], tf.shape(ti)[0]), bounds,
        [settings.batch_size] * (len(bounds) + 1), pad_to_bucket_boundary=True, drop_remainder=drop_remainder)
    return ds.prefetch(tf.data.AUTOTUNE)
