"""Corpus to token ids to length-sorted tf.data batches, through an on-disk shard cache.

The corpus is read once: pass one tokenizes to a text file and counts words, pass two writes int32 id shards.
Training then streams the shards, so memory does not grow with the corpus.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from chatbot import corpora
from chatbot.tokenizer import END_ID, START_ID, UNK_ID, Vocabulary

SHARD_PAIRS = 50_000
CHUNK_PAIRS = 4096  # examples sorted by length together: the pool that batches are cut from
# Batches a pool's reply-length band holds (see _cut): 4 measured least padding-weighted work on DailyDialog.
BAND = 4
JITTER = 2.0  # tokens of random length noise before sorting (see _cut): tiny corpora need it
CACHE_VERSION = 2


def _is_valid(source, target, fraction):
    """Deterministic split by content, so the same pair lands on the same side in every run and resume."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b((" ".join(source) + "\t" + " ".join(target)).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") / 2**32 < fraction


def tokenize_corpus(data, fmt, tokenizer, settings, workdir, valid_data=None, valid_format="auto"):
    """Pass one: write train.tok and valid.tok (a pair a line, see _tok_line). Returns the stats and a count of
    the training words for the vocabulary."""
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

    tmp = [workdir / "train.tok.tmp", workdir / "valid.tok.tmp"]
    try:
        with open(tmp[0], "w", encoding="utf-8") as train, open(tmp[1], "w", encoding="utf-8") as valid:
            for source, target in pairs(data, fmt, stats):
                held_out = valid_data is None and _is_valid(source, target, settings.valid_fraction)
                if not held_out:
                    counts.update(source)
                    counts.update(target)
                (valid if held_out else train).write(_tok_line(source, target))
            if valid_data is not None:
                valid_stats = corpora.CorpusStats()
                for source, target in pairs(valid_data, valid_format, valid_stats):
                    valid.write(_tok_line(source, target))
                corpora.require_pairs(valid_stats)
        corpora.require_pairs(stats)
        for name, path in zip(("train", "valid"), tmp):
            os.replace(path, workdir / f"{name}.tok")
    finally:
        for path in tmp:
            path.unlink(missing_ok=True)
    return stats, counts


# Tokens may hold spaces (the tweet tokenizer keeps "309 789 1267" as one phone number), but never the control
# characters the tokenizer's normaliser removes: those separate tokens, and source from target, in *.tok files.
_TOKEN_SEP, _SIDE_SEP = "\x1f", "\x1e"


def _tok_line(source, target):
    return _TOKEN_SEP.join(source) + _SIDE_SEP + _TOKEN_SEP.join(target) + "\n"


def _read_tok(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            source, target = line[:-1].split(_SIDE_SEP)
            yield source.split(_TOKEN_SEP), target.split(_TOKEN_SEP)


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
    """Length boundaries for XLA: with --xla a batch side of length n in [lo, hi) is padded to hi - 1 tokens,
    so the compiled step sees a handful of shapes instead of one per length."""
    bounds, b = [], 6
    while b < max_len + 1:
        bounds.append(b)
        b = int(b * 1.4) + 1
    return bounds + [max_len + 2]


def _width(length, settings):
    """How far a batch side whose longest row has `length` tokens is padded."""
    if not settings.xla:
        return length
    bounds = bucket_boundaries(max(settings.max_source_len, settings.max_target_len))
    return bounds[int(np.searchsorted(bounds, length, side="right"))] - 1


def global_batch_size(settings, replicas=1):
    """Rows per step: the batch size rounded up so that every replica gets as many rows."""
    return -(-settings.batch_size // replicas) * replicas


def _pool_sizes(workdir, manifest, split):
    """The size of every pool of examples (a shard cut into CHUNK_PAIRS pieces) that batches are made from."""
    sizes = []
    for name in manifest[split]["shards"]:
        with np.load(Path(workdir) / name, allow_pickle=False) as z:
            count = len(z["source_offsets"]) - 1
        sizes += [min(CHUNK_PAIRS, count - start) for start in range(0, count, CHUNK_PAIRS)]
    return sizes


def batches_per_epoch(workdir, manifest, split, settings):
    """The exact number of batches one pass over a split gives. Reads only the shards' offset arrays."""
    return sum(-(-size // settings.batch_size) for size in _pool_sizes(workdir, manifest, split))


def _gather(flat, offsets, index):
    """The segments flat[offsets[i]:offsets[i + 1]] for i in index, right-padded into one (n, longest) array."""
    starts, lengths = offsets[index], offsets[index + 1] - offsets[index]
    out = np.zeros((len(index), int(lengths.max(initial=0)) + 1), np.int32)
    rows = np.repeat(np.arange(len(index)), lengths)
    cols = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = flat[np.repeat(starts, lengths) + cols]
    return out, lengths.astype(np.int32)


def _cut(pool, source_lengths, target_lengths, batch, rng=None):
    """The pool's examples cut into batches of similar lengths on both sides: sorted by reply length, cut into
    bands of BAND batches, and each band sorted by source length before it is cut into batches. With an rng,
    lengths are jittered by up to JITTER tokens first, so that a small corpus (one pool) is not cut into the
    same batches every epoch."""
    if rng is not None:
        source_lengths = source_lengths + rng.uniform(0, JITTER, len(pool))
        target_lengths = target_lengths + rng.uniform(0, JITTER, len(pool))
    order = np.argsort(target_lengths, kind="stable")
    cuts = []
    for start in range(0, len(pool), BAND * batch):
        band = order[start:start + BAND * batch]
        band = band[np.argsort(source_lengths[band], kind="stable")]
        cuts += [pool[band[i:i + batch]] for i in range(0, len(band), batch)]
    return cuts


def _batches(workdir, shards, settings, epoch, shuffle):
    """One epoch of (source, target_in, target_out) batches, each side padded only to its own longest row.

    Examples are drawn in (shuffled) order in pools of CHUNK_PAIRS; a pool is sorted by reply and then source
    length and cut into batches, whose order is shuffled. Rows of similar lengths share a batch, so little of
    a step is spent on padding (DailyDialog, base preset: 16% of reply and 32% of source positions are padding,
    against 34% and 32% with length buckets; the reply side, with the output layer, is the costly one), and
    only one shard is in memory at a time."""
    rng = np.random.default_rng([settings.seed, epoch])
    order = rng.permutation(len(shards)) if shuffle else range(len(shards))
    for k in order:
        with np.load(Path(workdir) / shards[k], allow_pickle=False) as z:
            src, so, tgt, to = z["source"], z["source_offsets"], z["target"], z["target_offsets"]
        count = len(so) - 1
        index = rng.permutation(count) if shuffle else np.arange(count)
        for start in range(0, count, CHUNK_PAIRS):
            pool = index[start:start + CHUNK_PAIRS]
            cuts = _cut(pool, np.diff(so)[pool], np.diff(to)[pool], settings.batch_size, rng if shuffle else None)
            for part in (rng.permutation(len(cuts)) if shuffle else range(len(cuts))):
                rows = cuts[part]
                source, _ = _gather(src, so, rows)
                target, target_lengths = _gather(tgt, to, rows)
                target_out = target.copy()
                target_out[np.arange(len(rows)), target_lengths] = END_ID
                target_in = np.concatenate([np.full((len(rows), 1), START_ID, np.int32), target[:, :-1]], axis=1)
                s_width, t_width = _width(source.shape[1] - 1, settings), _width(target.shape[1], settings)
                yield (np.pad(source[:, :-1], [(0, 0), (0, s_width - source.shape[1] + 1)]),
                       np.pad(target_in, [(0, 0), (0, t_width - target.shape[1])]),
                       np.pad(target_out, [(0, 0), (0, t_width - target.shape[1])]))


def make_dataset(workdir, manifest, split, settings, epochs=(0, 1), shuffle=True, skip=0, replicas=1,
                 pipeline=(0, 1)):
    """Batches of (source_ids, target_in_ids, target_out_ids) for the epochs in range(*epochs), one after the
    other (see _batches). Every batch has global_batch_size rows: a pool's last, short batch is filled with
    rows that hold no target tokens (they add nothing to the loss or the gradients). Each epoch gives exactly
    batches_per_epoch batches, and no batch mixes two epochs, so one iterator serves a whole run.

    Same seed and epoch, same batches: that is what makes --resume exact (`skip` leaves out the batches the
    first epoch has already trained on). With replicas > 1 each batch is cut into one slice per replica, and
    input pipeline `pipeline` = (index, count) yields its replicas' slices in turn (tf.distribute's
    per-replica datasets)."""
    import tensorflow as tf  # here, so that reading a corpus (and failing on a bad one) needs no TensorFlow

    shards = manifest[split]["shards"]
    batch = global_batch_size(settings, replicas)
    matrix = tf.TensorSpec([None, None], tf.int32)

    def one_epoch(epoch):
        return tf.data.Dataset.from_generator(
            lambda e: _batches(workdir, shards, settings, int(e), shuffle), args=(epoch,),
            output_signature=(matrix, matrix, matrix))

    ds = tf.data.Dataset.range(*epochs).flat_map(one_epoch)
    if skip:
        ds = ds.skip(skip)

    def fill(s, ti, to):
        missing = batch - tf.shape(s)[0]
        # A filler row reads one END token and predicts nothing: its target_out is all padding.
        filler = tf.pad(tf.fill([missing, 1], END_ID), [[0, 0], [0, tf.shape(s)[1] - 1]])
        start = tf.pad(tf.fill([missing, 1], START_ID), [[0, 0], [0, tf.shape(ti)[1] - 1]])
        return (tf.concat([s, filler], 0), tf.concat([ti, start], 0),
                tf.concat([to, tf.zeros([missing, tf.shape(to)[1]], tf.int32)], 0))

    ds = ds.map(fill)
    if replicas > 1:
        index, count = pipeline
        local = replicas // count
        rows = batch // replicas

        def slices(*tensors):
            mine = [tf.reshape(t[index * local * rows:(index + 1) * local * rows], [local, rows, -1])
                    for t in tensors]
            return tf.data.Dataset.from_tensor_slices(tuple(mine))

        ds = ds.flat_map(slices)
    return ds.prefetch(tf.data.AUTOTUNE)
