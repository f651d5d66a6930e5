"""MMI-antiLM reranking of n-best replies, against the dull replies a seq2seq model likes for any input.

score = log p(reply | input) / n  -  lambda * log p(reply | empty input) / n
        - REPEAT_PENALTY * (repeated bigrams in the reply)  -  COPY_WEIGHT * (share of reply tokens copied from input)

with n = len(reply) + 1 (the END token counts). p(reply | empty input) is the decoder teacher-forced on the reply
with the encoder given a single PAD token: what the model says regardless of the input.
"""

import dataclasses

RERANK_POOL = 8  # when reranking, search for at least this many candidates per source
REPEAT_PENALTY = 1.0  # per repeated bigram inside a reply
COPY_WEIGHT = 1.0  # times the share of reply tokens that are content tokens copied from the input
FIRST_CONTENT_ID = 5  # ids below are the special tokens


def repeated_bigrams(ids):
    bigrams = list(zip(ids, ids[1:]))
    return len(bigrams) - len(set(bigrams))


def copied_share(source, ids):
    if not ids:
        return 0.0
    seen = {token for token in source if token >= FIRST_CONTENT_ID}
    return sum(token in seen for token in ids) / len(ids)


def rerank_many(engine, sources, groups, lam):
    """Rerank each source's candidates; one batched teacher-forced pass scores every candidate's empty-input
    log-prob. Returns new Candidates (same ids and log_prob, reranked score), best first, per source."""
    from .decoding import score_replies

    flat = [(source, candidate) for source, group in zip(sources, groups) for candidate in group]
    unconditional = score_replies(engine, [[]] * len(flat), [candidate.ids for _, candidate in flat])
    scored = iter(
        dataclasses.replace(
            candidate,
            score=(candidate.log_prob - lam * lm) / (len(candidate.ids) + 1)
            - REPEAT_PENALTY * repeated_bigrams(candidate.ids)
            - COPY_WEIGHT * copied_share(source, candidate.ids))
        for (source, candidate), lm in zip(flat, unconditional))
    return [sorted((next(scored) for _ in group), key=lambda c: -c.score) for group in groups]


def rerank(engine, source, candidates, lam):
    """Rerank one source's candidates (see the module docstring); best first."""
    return rerank_many(engine, [source], [candidates], lam)[0]
