"""Choosing replies with the NumPy engine: greedy, sampling and beam search, plus reply scoring.

Every mode decodes a batch of sources together (right-padded, sorted by length and cut into chunks of about
CHUNK_ROWS decoder rows) and stops as soon as every row has ended. The rules shared by all modes: PAD, UNK, START
and SEP are never emitted; END is forbidden until `min_length` tokens are out; after `max_length` tokens only END
may follow, so a reply never runs longer and every `log_prob` is log p(reply + END | input) under the plain model
(temperature 1, no masks), the same number `score_replies` gives. `no_repeat_ngram` applies in every mode, so
beam search with width 1 is exactly greedy. Arrays stay float32; only the per-row sums are float64.
"""

import dataclasses

import numpy as np

from .config import DecodingConfig
from .rerank import RERANK_POOL, rerank, rerank_many  # noqa: F401  (rerank is part of this module's API)
from .tokenizer import END_ID, PAD_ID, SEP_ID, START_ID, UNK_ID

BANNED_IDS = np.array([PAD_ID, UNK_ID, START_ID, SEP_ID])
CHUNK_ROWS = 256  # decoder rows stepped together: big enough for fast matmuls, small enough to stay in cache
NUCLEUS_PROBE = 64  # top-p sampling looks at this many likeliest tokens before sorting a whole row
_NEG_INF = np.float32(-np.inf)


@dataclasses.dataclass
class Candidate:
    ids: list  # reply token ids, without the end token
    log_prob: float  # log p(reply + END | input) under the model: temperature 1, no penalties
    score: float  # what candidates are ranked by (length penalty or reranking); higher is better

    @property
    def per_token(self):
        return self.log_prob / (len(self.ids) + 1)


def length_penalty(length, alpha):
    """GNMT's ((5 + length) / 6) ** alpha; scores are log_prob divided by it, length counting the END token."""
    return ((5.0 + length) / 6.0) ** alpha


def _candidate(ids, log_prob, alpha):
    return Candidate(ids, log_prob, log_prob / length_penalty(len(ids) + 1, alpha))


def _pad(sources):
    rows = [list(source) or [PAD_ID] for source in sources]
    padded = np.zeros((len(rows), max(map(len, rows))), np.int64)
    for i, row in enumerate(rows):
        padded[i, :len(row)] = row
    return padded


def _log_normaliser(logits):
    """log sum exp over the vocabulary, per row, computed stably in float32."""
    top = logits.max(axis=1)
    shifted = logits - top[:, None]
    return top + np.log(np.exp(shifted, out=shifted).sum(axis=1))


def _block_repeats(logits, history, n):
    """Forbid, per row, every token that would complete an n-gram already in that row's history."""
    if n <= 0:
        return False
    rows, length = history.shape
    if length < max(n - 1, 1):
        return False
    if n == 1:
        logits[np.arange(rows)[:, None], history] = _NEG_INF
        return True
    # match[:, j]: the n-1 tokens from j equal the history's last n-1, so history[j + n - 1] may not follow.
    # One column comparison per offset: far fewer calls than a sliding-window view, for one reply or many.
    span = length - n + 1
    if span <= 0:
        return False
    match = history[:, :span] == history[:, length - n + 1:length - n + 2]
    for k in range(1, n - 1):
        match &= history[:, k:span + k] == history[:, length - n + 1 + k:length - n + 2 + k]
    r, j = np.nonzero(match)
    if not len(r):
        return False
    logits[r, history[r, j + n - 1]] = _NEG_INF
    return True


class _Rules:
    """The per-step constraints as additive masks over the vocabulary, built once per decode: one add per
    step instead of several indexed writes."""

    def __init__(self, vocab, min_length, max_length, no_repeat):
        self.min_length, self.max_length, self.no_repeat = min_length, max_length, no_repeat
        self.may_end = np.zeros(vocab, np.float32)
        self.may_end[BANNED_IDS] = _NEG_INF
        self.no_end = self.may_end.copy()
        self.no_end[END_ID] = _NEG_INF
        self.only_end = np.full(vocab, _NEG_INF, np.float32)
        self.only_end[END_ID] = 0.0

    def mask(self, t):
        """The additive mask of step t, n-gram blocking aside."""
        if t >= self.max_length:
            return self.only_end
        return self.may_end if t >= self.min_length else self.no_end

    def apply(self, logits, t, history):
        """Set the logits of every token that may not come next to -inf, in place. END is never in a history,
        so n-gram blocking never forbids it."""
        if t >= self.min_length or t >= self.max_length:
            logits += self.mask(t)
            if t < self.max_length:
                _block_repeats(logits, history, self.no_repeat)
            return
        end = logits[:, END_ID].copy()
        logits += self.no_end
        if _block_repeats(logits, history, self.no_repeat):
            stuck = np.isneginf(logits.max(axis=1))  # blocking left nothing (tiny vocabularies): let it end
            logits[stuck, END_ID] = end[stuck]


def _draw(p, rng):
    """One index per row, with probability proportional to p (unnormalised, >= 0)."""
    cum = np.cumsum(p, axis=1)
    target = (1.0 - rng.random(len(p))) * cum[:, -1]  # in (0, total]: never lands on a zero-mass token
    return (cum < target[:, None]).sum(axis=1)


def _draw_top(x, rng, width, top_p, whole_row_mass):
    """Sample among each row's `width` likeliest tokens, cut to the top_p nucleus (the smallest set whose mass
    reaches top_p of the row's, or of the width's, mass). Returns the ids and the rows whose nucleus is wider."""
    rows = np.arange(len(x))[:, None]
    index = np.argpartition(x, x.shape[1] - width, axis=1)[:, x.shape[1] - width:]
    values = x[rows, index]
    order = np.argsort(-values, axis=1, kind="stable")
    index, values = index[rows, order], values[rows, order]
    p = np.exp(values - values[:, :1])
    cum = np.cumsum(p, axis=1)
    mass = np.exp(x - values[:, :1]).sum(axis=1) if whole_row_mass else cum[:, -1]
    size = (cum < np.float32(top_p) * mass[:, None]).sum(axis=1) + 1
    p[np.arange(width) >= size[:, None]] = 0
    return index[rows[:, 0], _draw(p, rng)], size > width


def _draw_nucleus(x, rng, top_p):
    """Nucleus sampling over whole rows: sorts values only, then keeps every token at or above the cut."""
    p = np.exp(x - x.max(axis=1, keepdims=True))
    if top_p < 1:
        desc = -np.sort(-p, axis=1)
        cum = np.cumsum(desc, axis=1)
        last = np.minimum((cum < np.float32(top_p) * cum[:, -1:]).sum(axis=1), p.shape[1] - 1)
        p[p < desc[np.arange(len(p)), last][:, None]] = 0
    return _draw(p, rng)


def _sampler(rng, temperature, top_k, top_p):
    """Temperature, then top-k, then top-p. Nucleus sampling without top-k first tries each row's
    NUCLEUS_PROBE likeliest tokens and sorts the whole row only where the nucleus is wider."""

    def choose(logits):
        x = logits / np.float32(temperature)
        vocab = x.shape[1]
        if 0 < top_k < vocab:
            return _draw_top(x, rng, top_k, top_p, False)[0]
        if top_p >= 1 or NUCLEUS_PROBE >= vocab:
            return _draw_nucleus(x, rng, top_p)
        token, wider = _draw_top(x, rng, NUCLEUS_PROBE, top_p, True)
        if wider.any():
            token[wider] = _draw_nucleus(x[wider], rng, top_p)
        return token

    return choose


def _greedy_choice(logits):
    return logits.argmax(axis=1)


def _decode_one(engine, padded, choose, config):
    """_decode_rows for a single row, the interactive case: the same choices and sums, with per-step
    bookkeeping in plain Python (n-gram blocking from a dict of seen prefixes, the log-probability summed from
    every step's logits in one pass at the end), because at batch size one the NumPy calls' fixed cost, not
    arithmetic, is what a reply waits for."""
    encoded = engine.encode(padded)
    rules = _Rules(engine.output_bias.shape[0], config.min_length, config.max_length, 0)
    n = config.no_repeat_ngram
    seen = {}  # (n-1)-gram -> tokens that followed it
    ids, raw = [], []
    state, previous = encoded.state, START_ID
    for t in range(config.max_length + 1):
        logits, state = engine.step(encoded, state, previous)
        raw.append(logits)
        masked = logits + rules.mask(t)
        if n > 0 and len(ids) >= n - 1 and t < config.max_length:
            banned = seen.get(tuple(ids[len(ids) - n + 1:]))
            if banned:
                masked[0, banned] = _NEG_INF
                if t < config.min_length and np.isneginf(masked.max()):
                    masked[0, END_ID] = logits[0, END_ID]  # blocking left nothing (tiny vocabularies): let it end
        previous = int(choose(masked)[0])
        if previous == END_ID:  # always, by max_length: then only END may follow
            break
        if n > 0 and len(ids) >= n - 1:
            seen.setdefault(tuple(ids[len(ids) - n + 1:]), []).append(previous)
        ids.append(previous)
    raw = np.concatenate(raw)
    picked = raw[np.arange(len(raw)), ids + [END_ID]] - _log_normaliser(raw)
    return [(ids, float(np.sum(picked, dtype=np.float64)))]


def _decode_rows(engine, padded, choose, config, repeat=1):
    """Greedy or sampled decoding of every row together. Returns (ids, log_prob) per row (source-major)."""
    encoded = engine.encode(padded)
    if repeat > 1:
        encoded = encoded.select(np.repeat(np.arange(len(padded)), repeat))
    rows, max_length = encoded.values.shape[0], config.max_length
    rules = _Rules(engine.output_bias.shape[0], config.min_length, max_length, config.no_repeat_ngram)
    tokens = np.zeros((rows, max_length + 1), np.int64)
    lengths = np.full(rows, max_length)
    sums = np.zeros(rows)
    live = np.arange(rows)  # the output row of each batch row
    done = np.zeros(rows, bool)  # ended, but still stepped until a quarter of the batch has ended
    state, previous = encoded.state, np.full(rows, START_ID)
    for t in range(max_length + 1):
        logits, state = engine.step(encoded, state, previous)
        norm = _log_normaliser(logits)
        rules.apply(logits, t, tokens[live, :t])
        choice = choose(logits)
        picked = logits[np.arange(len(choice)), choice] - norm
        ended = choice == END_ID
        if done.any():  # rows that ended earlier keep their tokens, length and sum
            picked[done] = 0.0
            choice = np.where(done, PAD_ID, choice)
            ended &= ~done
        sums[live] += picked
        tokens[live, t] = choice
        if ended.any():
            lengths[live[ended]] = t
            done |= ended
            if done.all():
                break
            if done.sum() * 4 > len(done):  # drop finished rows once they are a quarter of the batch
                keep = ~done
                encoded, state, live = encoded.select(keep), state[:, :, keep], live[keep]
                choice, done = choice[keep], done[keep]
        previous = choice
    return [(tokens[r, :lengths[r]].tolist(), float(sums[r])) for r in range(rows)]


def _beam_search(engine, padded, k, n_want, config):
    """Beam search of width k over every source at once (a B*k batch). Returns up to n_want Candidates each."""
    alpha, min_length, max_length = config.length_penalty, config.min_length, config.max_length
    sources = len(padded)
    first = engine.encode(padded)
    encoded = first.select(np.repeat(np.arange(sources), k))
    state, previous = first.state, np.full(sources, START_ID)
    vocab = engine.output_bias.shape[0]
    sums = np.full((sources, k), -np.inf)
    sums[:, 0] = 0.0  # all k beams start identical: only the first one is expanded
    tokens = np.zeros((sources * k, 0), np.int64)
    alive = np.arange(sources)
    finished = [[] for _ in range(sources)]
    width = min(2 * k, k * vocab)
    rules = _Rules(vocab, min_length, max_length, config.no_repeat_ngram)
    for t in range(max_length + 1):
        if t:
            logits, state = engine.step(encoded, state, previous)
        else:  # the k beams start identical: step one row per source, and copy it
            logits, state = engine.step(first, state, previous)
            logits, state = np.repeat(logits, k, axis=0), np.repeat(state, k, axis=2)
        norm = _log_normaliser(logits)
        rules.apply(logits, t, tokens)  # -inf masks: the same before or after normalising
        n = len(alive)
        by_row = np.arange(n)[:, None]  # plain fancy indexing: take_along_axis costs several microseconds a call
        # sums + log-softmax in one pass over the (n, k, vocab) scores, normalisers folded into the row offsets
        offsets = (sums - norm.reshape(n, k)).astype(np.float32)
        totals = (logits.reshape(n, k, vocab) + offsets[:, :, None]).reshape(n, k * vocab)
        top = np.argpartition(totals, k * vocab - width, axis=1)[:, k * vocab - width:]
        top = top[by_row, np.argsort(-totals[by_row, top], axis=1, kind="stable")]
        rows = by_row * k + top // vocab
        token = top % vocab
        new_sums = sums.reshape(-1)[rows] + (logits[rows, token] - norm[rows])
        is_end = token == END_ID
        # An END counts only if it ranks among the top k, as in greedy search when k == 1.
        for b, j in zip(*np.nonzero(is_end[:, :k] & np.isfinite(new_sums[:, :k]))):
            finished[alive[b]].append(_candidate(tokens[rows[b, j]].tolist(), float(new_sums[b, j]), alpha))
        go_on = ~is_end
        cols = np.nonzero(go_on & (np.cumsum(go_on, axis=1) <= k))[1].reshape(n, k)  # ENDs <= k, so k remain
        parents = rows[by_row, cols].reshape(-1)
        previous = token[by_row, cols].reshape(-1)
        sums = new_sums[by_row, cols]
        state, tokens = state[:, :, parents], np.concatenate([tokens[parents], previous[:, None]], axis=1)
        # A source is done once n_want finished hypotheses exist that no live beam can beat: log-probs only
        # fall, so the best live sum over the most favourable length penalty bounds every continuation.
        # (Stopping at k finished, as some libraries do, let short junk endings end the search early.)
        best = sums.max(axis=1)
        bound = best / length_penalty(max_length + 1 if alpha > 0 else t + 2, alpha)
        done = ~np.isfinite(best)
        for b in range(n):
            got = sorted((c.score for c in finished[alive[b]]), reverse=True)
            done[b] |= len(got) >= n_want and bound[b] <= got[n_want - 1]
        if done.all():
            break
        if done.any():
            keep = ~done
            rows_kept = np.repeat(keep, k)
            encoded, state, tokens = encoded.select(rows_kept), state[:, :, rows_kept], tokens[rows_kept]
            previous, sums, alive = previous[rows_kept], sums[keep], alive[keep]
    return [sorted(group, key=lambda c: -c.score)[:n_want] for group in finished]


def decode(engine, sources, config, rng=None):
    """Replies for every source: per source, up to max(config.n_best, 1) Candidates, best first."""
    config.validate()
    if rng is None:
        rng = np.random.default_rng(config.seed)  # a seed of None gives fresh entropy
    n_best = max(config.n_best, 1)
    reranking = config.rerank > 0 and config.mode != "greedy"
    pool = max(n_best, RERANK_POOL) if reranking else n_best
    per_source = {"greedy": 1, "sample": pool, "beam": max(config.beam, pool)}[config.mode]
    chunk = max(1, CHUNK_ROWS // per_source)
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results = [None] * len(sources)
    for start in range(0, len(order), chunk):
        index = order[start:start + chunk]
        padded = _pad([sources[i] for i in index])
        if config.mode == "beam":
            groups = _beam_search(engine, padded, per_source, pool, config)
        else:
            choose = _greedy_choice if config.mode == "greedy" else _sampler(
                rng, config.temperature, config.top_k, config.top_p)
            if len(index) == 1 and per_source == 1:
                rows = _decode_one(engine, padded, choose, config)
            else:
                rows = _decode_rows(engine, padded, choose, config, per_source)
            groups = []
            for b in range(len(index)):
                unique = {}  # a sample drawn twice counts once
                for ids, log_prob in rows[b * per_source:(b + 1) * per_source]:
                    unique.setdefault(tuple(ids), log_prob)
                found = [_candidate(list(ids), lp, config.length_penalty) for ids, lp in unique.items()]
                groups.append(sorted(found, key=lambda c: -c.score))
        if reranking:
            groups = rerank_many(engine, [sources[i] for i in index], groups, config.rerank)
        for i, group in zip(index, groups):
            results[i] = group[:n_best]
    return results


def greedy(engine, sources, max_length, min_length=1, *, no_repeat_ngram=0, length_penalty=1.0):
    """Batched argmax decoding, one Candidate per source (for evaluation)."""
    config = DecodingConfig(mode="greedy", max_length=max_length, min_length=min_length,
                            no_repeat_ngram=no_repeat_ngram, length_penalty=length_penalty, n_best=1)
    return [group[0] for group in decode(engine, sources, config)]


def score_replies(engine, sources, replies):
    """log p(reply + END | source) for each pair, teacher-forced in batches sorted by reply length."""
    totals = np.zeros(len(replies))
    order = sorted(range(len(replies)), key=lambda i: len(replies[i]))
    for start in range(0, len(order), CHUNK_ROWS):
        index = order[start:start + CHUNK_ROWS]
        steps = max(len(replies[i]) for i in index) + 1
        inputs = np.full((len(index), steps), PAD_ID, np.int64)
        targets = np.full((len(index), steps), PAD_ID, np.int64)
        valid = np.zeros((len(index), steps), bool)
        for j, i in enumerate(index):
            reply = list(replies[i])
            inputs[j, :len(reply) + 1] = [START_ID] + reply
            targets[j, :len(reply) + 1] = reply + [END_ID]
            valid[j, :len(reply) + 1] = True
        encoded = engine.encode(_pad([sources[i] for i in index]))
        state, sums, every = encoded.state, np.zeros(len(index)), np.arange(len(index))
        for t in range(steps):
            logits, state = engine.step(encoded, state, inputs[:, t])
            sums += np.where(valid[:, t], logits[every, targets[:, t]] - _log_normaliser(logits), 0)
        totals[index] = sums
    return totals.tolist()


def score_reply(engine, source, reply_ids):
    """log p(reply + END | source) under the model."""
    return score_replies(engine, [source], [reply_ids])[0]


__all__ = ["Candidate", "decode", "greedy", "length_penalty", "rerank", "score_replies", "score_reply"]
