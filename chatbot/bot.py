"""The library entry point: `Chatbot.load().reply("hello")`. No UI code, no TensorFlow."""

import dataclasses
import os
import re

import numpy as np

from . import bundle as bundle_io
from . import decoding
from .engine import Engine
from .errors import UsageError
from .tokenizer import SEP_ID

# Text far longer than any model input is cut before tokenizing, so a pasted book costs no more than a line.
MAX_INPUT_CHARS = 4000
# Terminals hand undecodable bytes over as lone surrogates (surrogateescape); they cannot be written as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text):
    """Text safe to store and print: lone surrogates (from invalid UTF-8) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


@dataclasses.dataclass
class Reply:
    input: str
    reply: str
    score: float
    log_prob: float
    tokens: list
    mode: str

    def to_dict(self):
        return {"input": self.input, "reply": self.reply, "score": round(self.score, 4),
                "log_prob": round(self.log_prob, 4), "tokens": self.tokens, "mode": self.mode}


class Chatbot:
    def __init__(self, bundle, **decoding_options):
        self.bundle = bundle
        self.engine = Engine(bundle.model, bundle.weights)
        self.decoding = bundle.decoding.replace(**decoding_options)
        self._rng = np.random.default_rng(self.decoding.seed)

    @classmethod
    def load(cls, path=None, **decoding_options):
        """Load a bundle: `path`, else $CHATBOT_MODEL, else the shipped default model. Keyword arguments set the
        decoding (mode, temperature, top_k, top_p, beam, length_penalty, no_repeat_ngram, min_length, max_length,
        n_best, rerank, seed)."""
        path = path or os.environ.get("CHATBOT_MODEL") or None
        return cls(bundle_io.load(path), **decoding_options)

    @property
    def name(self):
        return self.bundle.name

    @property
    def context_turns(self):
        return self.bundle.model.context_turns

    def configure(self, **decoding_options):
        """Change decoding settings; a new seed restarts the random stream so replies repeat."""
        self.decoding = self.decoding.replace(**decoding_options)
        if "seed" in decoding_options:
            self._rng = np.random.default_rng(self.decoding.seed)

    def encode(self, text, history=()):
        """Input text (plus earlier turns, oldest first, when the model was trained with context) to ids:
        turns joined by the separator, keeping the most recent max_source_len tokens."""
        if not isinstance(text, str) or not text.strip():
            raise UsageError("empty input: type some words")
        turns = list(history)[-(self.context_turns - 1):] if self.context_turns > 1 else []
        ids = []
        for turn in turns + [text]:
            if ids:
                ids.append(SEP_ID)
            ids.extend(self.bundle.vocab.encode(self.bundle.tokenizer.tokenize(turn[-MAX_INPUT_CHARS:])))
        return ids[-self.bundle.model.max_source_len:]

    def _to_reply(self, text, candidate, mode):
        tokens = self.bundle.vocab.decode(candidate.ids)
        return Reply(input=text, reply=self.bundle.tokenizer.detokenize(tokens), score=float(candidate.score),
                     log_prob=float(candidate.log_prob), tokens=tokens, mode=mode)

    def _config(self, n):
        config = self.decoding if n is None else self.decoding.replace(n_best=n)
        if config.mode == "greedy" and config.n_best > 1:
            # Greedy search finds one reply; asking for more means searching wider.
            config = config.replace(mode="beam", beam=max(config.beam, config.n_best))
        return config

    def respond_many(self, texts, histories=None, n=None):
        """Best-first candidate lists (Reply objects) for each text, decoded as one batch. `n` candidates each
        (default: the n_best setting); in greedy mode more than one comes from beam search."""
        texts = list(texts)
        histories = histories or [()] * len(texts)
        sources = [self.encode(t, h) for t, h in zip(texts, histories)]
        config = self._config(n)
        results = decoding.decode(self.engine, sources, config, rng=self._rng)
        return [[self._to_reply(t, c, config.mode) for c in cands] for t, cands in zip(texts, results)]

    def respond(self, text, history=()):
        """The best reply, as a Reply with its score, log-probability and tokens."""
        return self.respond_many([text], [history], n=1)[0][0]

    def reply(self, text, history=()):
        """One reply as a sentence."""
        return self.respond(text, history).reply

    def replies(self, texts):
        """Replies to many independent inputs, decoded together (much faster than one by one)."""
        return [cands[0].reply for cands in self.respond_many(texts, n=1)]

    def nbest(self, text, n=5, history=()):
        """Up to n candidates, best first, each a Reply with its score and summed log-probability."""
        return self.respond_many([text], [history], n=n)[0]

    def info(self):
        m, t = self.bundle.model, self.bundle.training
        return {"model": str(self.bundle.path), "config": m.to_dict(), "vocab_size": len(self.bundle.vocab),
                "training": t, "val_perplexity": t.get("val_perplexity"), "decoding": self.decoding.to_dict()}


class Conversation:
    """One chat with a bot: the turns it sees as context (for models trained with context_turns > 1), the
    transcript, and the last message, so it can be answered again. The REPL's state; no UI code."""

    def __init__(self, bot, overrides=None):
        self.bot = bot
        self.overrides = dict(overrides or {})  # the user's decoding choices, carried over to a new model
        self.turns = []  # user and bot text alternating, oldest first
        self.transcript = []  # every message shown, plus notes (resets, model switches), for saving
        self._last = None  # (text, history) of the last message
        self._shown = []  # token lists already shown for the last message

    def history(self):
        keep = self.bot.context_turns - 1
        return self.turns[-keep:] if keep > 0 else []

    def _record(self, reply, **extra):
        self._shown.append(reply.tokens)
        per_token = reply.log_prob / (len(reply.tokens) + 1)  # the end token counts, as in decoding
        self.transcript.append({"role": "bot", "text": reply.reply, "score": round(reply.score, 4),
                                "log_prob": round(reply.log_prob, 4), "per_token": round(per_token, 4),
                                "mode": reply.mode, **extra})

    def say(self, text):
        text = clean_text(text)
        history = self.history()
        reply = self.bot.respond(text, history)
        self._last, self._shown = (text, history), []
        self.transcript.append({"role": "user", "text": text})
        self._record(reply)
        self.turns += [text, reply.reply]
        return reply

    def _require_last(self, what):
        if self._last is None:
            raise UsageError(f"nothing to {what} yet: send a message first")
        return self._last

    def retry(self):
        """Another reply to the last message, replacing the last reply in the context: a fresh sample in sample
        mode, otherwise the best candidate not shown yet. None when there is none."""
        text, history = self._require_last("retry")
        if self.bot.decoding.mode == "sample":
            reply = self.bot.respond(text, history)
        else:
            fresh = [c for c in self.bot.nbest(text, len(self._shown) + 2, history) if c.tokens not in self._shown]
            if not fresh:
                return None
            reply = fresh[0]
        self._record(reply, retry=True)
        self.turns[-1] = reply.reply
        return reply

    def candidates(self, n):
        text, history = self._require_last("rank")
        return self.bot.nbest(text, n, history)

    def reset(self):
        self.turns, self._last, self._shown = [], None, []
        self.transcript.append({"role": "note", "text": "context reset"})

    def configure(self, **options):
        self.bot.configure(**options)  # validates first, so a bad value changes nothing
        self.overrides.update(options)

    def switch_model(self, path):
        """Load another bundle with the same decoding choices; on any error the current model stays."""
        bot = Chatbot.load(path, **self.overrides)
        self.bot = bot
        self.transcript.append({"role": "note", "text": f"switched to model {bot.name}"})
        return bot
