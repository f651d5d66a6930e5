"""The library entry point: `Chatbot.load().reply("hello")`. No UI code, no TensorFlow."""

import dataclasses
import os

import numpy as np

from . import bundle as bundle_io
from . import decoding
from .engine import Engine
from .errors import UsageError
from .tokenizer import SEP_ID

# Text far longer than any model input is cut before tokenizing, so a pasted book costs no more than a line.
MAX_INPUT_CHARS = 4000


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

    def _to_reply(self, text, candidate):
        tokens = self.bundle.vocab.decode(candidate.ids)
        return Reply(input=text, reply=self.bundle.tokenizer.detokenize(tokens), score=float(candidate.score),
                     log_prob=float(candidate.log_prob), tokens=tokens, mode=self.decoding.mode)

    def respond_many(self, texts, histories=None, n=None):
        """Best-first candidate lists (Reply objects) for each text, decoded as one batch."""
        texts = list(texts)
        histories = histories or [()] * len(texts)
        sources = [self.encode(t, h) for t, h in zip(texts, histories)]
        config = self.decoding if n is None else self.decoding.replace(n_best=n)
        results = decoding.decode(self.engine, sources, config, rng=self._rng)
        return [[self._to_reply(t, c) for c in cands] for t, cands in zip(texts, results)]

    def respond(self, text, history=()):
        return self.respond_many([text], [history])[0][0]

    def reply(self, text, history=()):
        """One reply as a sentence."""
        return self.respond(text, history).reply

    def replies(self, texts):
        """Replies to many independent inputs, decoded together (much faster than one by one)."""
        return [cands[0].reply for cands in self.respond_many(texts)]

    def nbest(self, text, n=5, history=()):
        """Up to n candidates, best first, each a Reply with its score and summed log-probability."""
        return self.respond_many([text], [history], n=n)[0]

    def info(self):
        m, t = self.bundle.model, self.bundle.training
        return {"model": str(self.bundle.path), "config": m.to_dict(), "vocab_size": len(self.bundle.vocab),
                "training": t, "val_perplexity": t.get("val_perplexity"), "decoding": self.decoding.to_dict()}
