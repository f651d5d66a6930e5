"""Dialogues to (context, reply) training pairs, and the preprocessing report a user reads before training."""

import dataclasses
import hashlib

from .errors import CorpusError, UsageError
from .tokenizer import SEP

# Reasons a pair can be dropped, in the order they are checked (the report lists them in this order).
DROP_REASONS = ("empty", "too_short", "reply_too_long", "duplicate")


@dataclasses.dataclass
class CorpusStats:
    """Counts filled in while a corpus is read and turned into pairs."""

    dialogues: int = 0
    turns: int = 0
    pairs_read: int = 0
    pairs_kept: int = 0
    dropped: dict = dataclasses.field(default_factory=dict)  # reason -> pairs
    truncated_sources: int = 0
    replaced_bytes: int = 0
    files: list = dataclasses.field(default_factory=list)
    skipped: dict = dataclasses.field(default_factory=dict)  # reason -> turns or dialogues left out while reading
    corpora: list = dataclasses.field(default_factory=list)  # the paths the user gave

    def drop(self, reason, count=1):
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def skip(self, reason, count=1):
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    def dropped_summary(self):
        if not self.dropped:
            return "none"
        order = sorted(self.dropped, key=lambda r: (DROP_REASONS.index(r) if r in DROP_REASONS else 99, r))
        return ", ".join(f"{reason} {self.dropped[reason]:,}" for reason in order)

    def report_lines(self, vocab=None, unk_rate=None):
        where = ", ".join(self.corpora) or ", ".join(self.files) or "(dialogues given directly)"
        lines = [
            f"corpus: {where} ({len(self.files)} file{'' if len(self.files) == 1 else 's'} read)",
            f"dialogues: {self.dialogues:,}, turns: {self.turns:,}",
            f"pairs read: {self.pairs_read:,}",
            f"pairs kept: {self.pairs_kept:,} ({_percent(self.pairs_kept, self.pairs_read)})",
            f"pairs dropped: {sum(self.dropped.values()):,} ({self.dropped_summary()})",
            f"contexts cut to their most recent tokens: {self.truncated_sources:,}",
        ]
        if self.skipped:
            skipped = ", ".join(f"{r} {n:,}" for r, n in sorted(self.skipped.items()))
            lines.append(f"left out while reading: {skipped} (a dialogue is split where a turn is left out)")
        lines.append(f"undecodable bytes replaced: {self.replaced_bytes:,}")
        if vocab is not None:
            size = vocab if isinstance(vocab, int) else len(vocab)
            lines.append(f"vocabulary size: {size:,}")
        if unk_rate is not None:
            lines.append(f"unknown-token rate: {unk_rate * 100:.2f}%")
        return lines

    def to_dict(self):
        return dataclasses.asdict(self)


def _percent(part, whole):
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def require_pairs(stats, path=None):
    """Stop with a clear message when a corpus gave nothing to train on."""
    if stats.pairs_kept == 0:
        where = path or ", ".join(stats.corpora) or ", ".join(stats.files) or "the corpus"
        raise CorpusError(f"no usable pairs in {where} (read {stats.pairs_read:,}, dropped: {stats.dropped_summary()})")


def make_pairs(dialogues, context_turns=1):
    """Every turn after the first is a reply to the (at most context_turns) turns before it, oldest first."""
    if context_turns < 1:
        raise UsageError(f"context turns must be at least 1, not {context_turns}")
    for dialogue in dialogues:
        yield from _dialogue_pairs(dialogue, context_turns)


def _dialogue_pairs(dialogue, context_turns):
    for i in range(1, len(dialogue)):
        yield tuple(dialogue[max(0, i - context_turns):i]), dialogue[i]


def _join_context(context_tokens):
    # Turns with no tokens are left out so the source never holds two separators in a row.
    source = []
    for tokens in context_tokens:
        if tokens:
            if source:
                source.append(SEP)
            source.extend(tokens)
    return source


def _pair_key(source, target):
    # A 16-byte digest per pair keeps the duplicate set small on corpora larger than memory allows as text.
    text = "\x1f".join(source) + "\x1e" + "\x1f".join(target)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def prepare_pairs(dialogues, tokenizer, context_turns=1, max_source_len=30, max_target_len=30, min_length=1,
                  dedupe=True, stats=None):
    """Token pairs ready for the vocabulary and the model; counts what was dropped and why in stats."""
    if max_source_len < 1 or max_target_len < 2:
        raise UsageError("max source length must be at least 1 and max target length at least 2")
    if context_turns < 1:
        raise UsageError(f"context turns must be at least 1, not {context_turns}")
    stats = stats if stats is not None else CorpusStats()
    seen = set()
    for dialogue in dialogues:
        # Tokenize each turn once, although it appears in up to context_turns + 1 pairs.
        tokens = [tokenizer.tokenize(turn) for turn in dialogue]
        for context, target in _dialogue_pairs(tokens, context_turns):
            stats.pairs_read += 1
            source = _join_context(context)
            if not source or not target:
                stats.drop("empty")
                continue
            if len(target) < min_length or len(source) - source.count(SEP) < min_length:
                stats.drop("too_short")
                continue
            # The decoder appends an end token, so the reply may use one position less.
            if len(target) > max_target_len - 1:
                stats.drop("reply_too_long")
                continue
            truncated = len(source) > max_source_len
            if truncated:
                # The most recent context matters most for the reply: keep the end, not the start.
                source = source[-max_source_len:]
                while source and source[0] == SEP:
                    source = source[1:]
            if dedupe:
                key = _pair_key(source, target)
                if key in seen:
                    stats.drop("duplicate")
                    continue
                seen.add(key)
            stats.truncated_sources += truncated
            stats.pairs_kept += 1
            yield source, list(target)


def unknown_rate(token_lists, vocab):
    """Share of tokens the vocabulary does not know (0.0 for no tokens)."""
    total = unknown = 0
    for tokens in token_lists:
        total += len(tokens)
        unknown += sum(1 for t in tokens if t not in vocab)
    return unknown / total if total else 0.0
