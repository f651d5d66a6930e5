"""Evaluating a model on (context, reply) pairs: perplexity of the reference replies, and BLEU, distinct-n and the
generic-reply rate of the replies the bot generates with its own decoding settings (the same as `chatbot reply`).

Perplexity is word-level over the model's tokenizer: exp(-sum log p / count), where every reference contributes
its tokens (unknown words as <unk>, cut to max_target_len - 1 like training) plus one end token.
"""

import collections
import itertools
import math
import time
import warnings

from .errors import CorpusError, UsageError
from .pairs import make_pairs
from .tokenizer import UNK_ID

BATCH = 256


def ngrams(tokens, n):
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(token_lists, n):
    """Unique n-grams / total n-grams over all the token lists (0.0 when there are no n-grams)."""
    grams = [gram for tokens in token_lists for gram in ngrams(list(tokens), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def generic_rate(token_lists, top=10):
    """Share of the lists equal to one of the `top` most frequent lists. Ties do not matter: it is the sum of
    the `top` largest counts. Note the floor of min(top, N) / N on N lists, so it means little on tiny corpora."""
    counts = collections.Counter(tuple(tokens) for tokens in token_lists)
    total = sum(counts.values())
    return sum(sorted(counts.values(), reverse=True)[:top]) / total if total else 0.0


def bleu(references, hypotheses, max_n=2):
    """Corpus BLEU with uniform weights up to `max_n`-grams (1: BLEU-1, 2: BLEU-2), one reference per hypothesis,
    on lowercased tokens, smoothed with NLTK's method1."""
    from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references for {len(hypotheses)} hypotheses")
    if not hypotheses or not any(hypotheses):
        return 0.0
    weights = tuple(1.0 / max_n if i < max_n else 0.0 for i in range(4))
    refs = [[[t.lower() for t in ref]] for ref in references]
    hyps = [[t.lower() for t in hyp] for hyp in hypotheses]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns about zero n-gram counts, which the smoothing handles
        return float(corpus_bleu(refs, hyps, weights=weights, smoothing_function=SmoothingFunction().method1))


def load_pairs(path, fmt="auto", context_turns=1, tokenizer=None, limit=None, stats=None):
    """The first `limit` (context turns, reply) pairs of a corpus, as training makes them: context turns with no
    tokens are left out, and so are pairs whose reply or whole context has none (training drops them too).
    Without a tokenizer, "no tokens" means blank. Raises a usage error when no pair is left."""
    from .corpora import read_dialogues

    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    dialogues = read_dialogues(path, fmt, stats)  # checks the format and path at once

    tokens = {}  # each turn appears in up to context_turns + 1 pairs; NLTK's tokenizer is the slow part

    def has_tokens(text):
        if text not in tokens:
            tokens[text] = bool(tokenizer.tokenize(text)) if tokenizer is not None else bool(text.strip())
        return tokens[text]

    def usable():
        for context, reply in make_pairs(dialogues, context_turns):
            context = tuple(turn for turn in context if has_tokens(turn))
            if context and has_tokens(reply):
                yield context, reply
            if len(tokens) > 100_000:
                tokens.clear()

    pairs = list(itertools.islice(usable(), limit))
    if not pairs:
        raise CorpusError("no (context, reply) pairs to evaluate on", path)
    return pairs


def _sources(bot, pairs):
    return [bot.encode(context[-1], context[:-1]) for context, _ in pairs]


def perplexity(bot, pairs, sources=None, references=None):
    """Word-level perplexity of the reference replies, with counts, as a dict. `sources` (encoded contexts) and
    `references` (reply tokens) may be given when already computed."""
    from .decoding import score_replies

    sources = sources if sources is not None else _sources(bot, pairs)
    references = references if references is not None else [bot.bundle.tokenizer.tokenize(r) for _, r in pairs]
    limit = bot.bundle.model.max_target_len - 1
    replies = [bot.bundle.vocab.encode(tokens) for tokens in references]
    truncated = sum(len(ids) > limit for ids in replies)
    replies = [ids[:limit] for ids in replies]
    words = sum(map(len, replies))
    unknown = sum(ids.count(UNK_ID) for ids in replies)
    total_log_prob = sum(score_replies(bot.engine, sources, replies))  # batched by score_replies, length-sorted
    tokens = words + len(replies)  # one end token per reply
    return {"perplexity": math.exp(-total_log_prob / tokens), "reference_tokens": tokens,
            "truncated_references": truncated, "reference_unknown_rate": unknown / words if words else 0.0}


def generate(bot, pairs, batch_size=BATCH):
    """The bot's best reply (a Reply) to each pair's context, decoded exactly as `chatbot reply` does."""
    replies = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        results = bot.respond_many([c[-1] for c, _ in chunk], [tuple(c[:-1]) for c, _ in chunk])
        replies.extend(candidates[0] for candidates in results)
    return replies


def evaluate(bot, pairs, batch_size=BATCH, samples=0, with_perplexity=True):
    """All the figures for `pairs` (a list of (context turns tuple, reply text)), as a JSON-ready dict."""
    pairs = [(tuple(context), reply) for context, reply in pairs]
    if not pairs:
        raise UsageError("no pairs to evaluate on")
    started = time.perf_counter()
    result = {"pairs": len(pairs)}
    references = [bot.bundle.tokenizer.tokenize(reply) for _, reply in pairs]
    if with_perplexity:
        result.update(perplexity(bot, pairs, references=references))
    scored = time.perf_counter()
    replies = generate(bot, pairs, batch_size)
    generated = time.perf_counter()
    hypotheses = [reply.tokens for reply in replies]
    result.update({
        "bleu1": bleu(references, hypotheses, 1),
        "bleu2": bleu(references, hypotheses, 2),
        "distinct1": distinct_n(hypotheses, 1),
        "distinct2": distinct_n(hypotheses, 2),
        "generic_rate": generic_rate(hypotheses, 10),
        "avg_reply_tokens": sum(map(len, hypotheses)) / len(pairs),
        "avg_reference_tokens": sum(map(len, references)) / len(pairs),
        "decoding": bot.decoding.to_dict(),
        "scoring_seconds": scored - started,
        "generation_seconds": generated - scored,
        "elapsed_seconds": time.perf_counter() - started,
        "replies_per_second": len(pairs) / max(generated - scored, 1e-9),
    })
    if samples > 0:
        step = max(len(pairs) / samples, 1.0)
        picks = sorted({min(int(i * step), len(pairs) - 1) for i in range(min(samples, len(pairs)))})
        result["samples"] = [{"input": list(pairs[i][0]), "reference": pairs[i][1], "reply": replies[i].reply}
                             for i in picks]
    return result


LABELS = (("pairs", "pairs", "{:,}"), ("perplexity", "perplexity", "{:.3f}"),
          ("reference_tokens", "reference tokens (+ end)", "{:,}"),
          ("truncated_references", "references cut to max length", "{:,}"),
          ("reference_unknown_rate", "unknown reference tokens", "{:.2%}"),
          ("bleu1", "BLEU-1", "{:.4f}"), ("bleu2", "BLEU-2", "{:.4f}"),
          ("distinct1", "distinct-1", "{:.4f}"), ("distinct2", "distinct-2", "{:.4f}"),
          ("generic_rate", "generic-reply rate (top 10)", "{:.2%}"),
          ("avg_reply_tokens", "average reply length", "{:.2f} tokens"),
          ("avg_reference_tokens", "average reference length", "{:.2f} tokens"),
          ("elapsed_seconds", "elapsed", "{:.2f} s"), ("replies_per_second", "replies/s", "{:.1f}"))


def decoding_summary(decoding):
    return ", ".join(f"{k.replace('_', '-')} {v}" for k, v in decoding.items())


def format_table(result):
    """A small aligned table, one figure per line."""
    rows = [(label, fmt.format(result[key])) for key, label, fmt in LABELS if key in result]
    rows.append(("decoding", decoding_summary(result["decoding"])))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
