"""Text to tokens to ids and back: NLTK tokenizers that need no downloaded data, and the vocabulary."""

import collections
import importlib.util
import json
import os
import re
import sys
import types
import unicodedata

from .errors import ModelError


def _deferred(module, name):
    """A stand-in for module.name that imports the real one when first called."""
    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    return call


def _import_nltk_tokenizers():
    """`import nltk` runs nltk/__init__.py, which imports most of NLTK: 0.37 s of a 0.55 s cold reply here.
    The two tokenizer modules need none of it, so the parent packages are stood in by bare namespace modules
    while they load, then removed so a later plain `import nltk` gets the real package."""
    if "nltk" in sys.modules:
        from nltk.tokenize.casual import TweetTokenizer
        from nltk.tokenize.treebank import TreebankWordDetokenizer

        return TweetTokenizer, TreebankWordDetokenizer
    base = os.path.dirname(importlib.util.find_spec("nltk").origin)
    stand_ins = {"nltk": {"__path__": [base]}, "nltk.tokenize": {"__path__": [os.path.join(base, "tokenize")]},
                 # nltk.tokenize.api takes one helper from nltk.internals, and nltk.tokenize.util two from
                 # xml.sax.saxutils, whose imports (urllib, http.client, ssl, email...) cost more than the
                 # tokenizers themselves: 30 ms and 8 MB. They are only called by tokenizer methods this project
                 # never uses, and then the real ones are fetched.
                 "nltk.internals": {"overridden": _deferred("nltk.internals", "overridden")},
                 "xml.sax.saxutils": {name: _deferred("xml.sax.saxutils", name) for name in ("escape", "unescape")}}
    stand_ins = {name: attributes for name, attributes in stand_ins.items() if name not in sys.modules}
    for name, attributes in stand_ins.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        sys.modules[name] = module
    try:
        from nltk.tokenize.casual import TweetTokenizer
        from nltk.tokenize.treebank import TreebankWordDetokenizer
    finally:
        for name in stand_ins:
            del sys.modules[name]
    return TweetTokenizer, TreebankWordDetokenizer


TweetTokenizer, TreebankWordDetokenizer = _import_nltk_tokenizers()

PAD, UNK, START, END, SEP = "<pad>", "<unk>", "<s>", "</s>", "<sep>"
SPECIALS = (PAD, UNK, START, END, SEP)
PAD_ID, UNK_ID, START_ID, END_ID, SEP_ID = range(len(SPECIALS))

# Control characters (but not tab/newline, which the normaliser turns into spaces) and lone surrogates
# from bad input would otherwise reach the tokenizer as words.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffd]")
# Corpora such as DailyDialog split contractions with spaces ("it ’ s", "let ' s"); rejoin them so
# training text and typed text give the same tokens.
_SPLIT_CONTRACTION = re.compile(r"(\w) ?' ?(s|t|m|ll|re|d|ve|clock)\b", re.IGNORECASE)
# "right.But" (a missing space after a full stop) is common in scraped dialogue.
_GLUED_SENTENCE = re.compile(r"([a-z]{2})([.!?])([A-Z][a-z])")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "´": "'", "`": "'", "“": '"', "”": '"', "„": '"'})
_EMOTICON = re.compile(r"^[:;=8xX][-o^']?[()\[\]dDpP/\\|*3oO]+$|^<3$|^[()\[\]dDpP/\\|][-o^']?[:;=]$")
_SENTENCE_START = re.compile(r"(^|[.!?]\s+)([a-z])")


class Tokenizer:
    """Normalise, lowercase and split chat text; join tokens back into a readable sentence."""

    def __init__(self, lowercase=True, normalization="NFKC"):
        self.lowercase = lowercase
        self.normalization = normalization
        self._tokenizer = TweetTokenizer(preserve_case=not lowercase, reduce_len=True)
        self._detokenizer = TreebankWordDetokenizer()

    def get_config(self):
        return {"kind": "nltk-tweet", "lowercase": self.lowercase, "normalization": self.normalization}

    @classmethod
    def from_config(cls, config):
        return cls(lowercase=config.get("lowercase", True), normalization=config.get("normalization", "NFKC"))

    def normalize(self, text):
        if self.normalization:
            text = unicodedata.normalize(self.normalization, text)
        text = _CONTROL.sub(" ", text.translate(_QUOTES))
        text = _GLUED_SENTENCE.sub(r"\1\2 \3", text)
        return _SPLIT_CONTRACTION.sub(r"\1'\2", text)

    def tokenize(self, text):
        return self._tokenizer.tokenize(self.normalize(text))

    def detokenize(self, tokens, capitalize=True):
        # The Treebank detokenizer glues emoticons to the word before and cannot pair plain quotes,
        # so emoticons are joined with spaces around them and quotes are given their Treebank forms.
        pieces, words, open_quote = [], [], False
        for token in tokens:
            if _EMOTICON.match(token):
                if words:
                    pieces.append(self._detokenizer.detokenize(words))
                    words = []
                pieces.append(token)
            elif token == '"':
                words.append("''" if open_quote else "``")
                open_quote = not open_quote
            else:
                words.append(token)
        if words:
            pieces.append(self._detokenizer.detokenize(words))
        text = " ".join(pieces)
        text = re.sub(r"\.\.\.(?=\w)", "... ", text)
        if capitalize:
            text = re.sub(r"\bi\b(?=$|[\s'.,!?])", "I", text)
            text = _SENTENCE_START.sub(lambda m: m.group(1) + m.group(2).upper(), text)
        return text


class Vocabulary:
    """Token <-> id. Ids 0-4 are reserved: padding, unknown, start, end, and the turn separator."""

    def __init__(self, tokens):
        tokens = list(tokens)
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ModelError(f"vocabulary must start with the reserved tokens {', '.join(SPECIALS)}")
        if len(set(tokens)) != len(tokens):
            raise ModelError("vocabulary has duplicate tokens")
        self.tokens = tokens
        self.index = {token: i for i, token in enumerate(tokens)}

    @classmethod
    def build(cls, token_lists, min_count=1, max_size=None):
        counts = collections.Counter()
        for tokens in token_lists:
            counts.update(tokens)
        return cls.from_counts(counts, min_count, max_size)

    @classmethod
    def from_counts(cls, counts, min_count=1, max_size=None):
        """Most frequent first; ties broken alphabetically so the same data always gives the same ids."""
        counts = {t: c for t, c in counts.items() if t not in SPECIALS}
        ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(SPECIALS + tuple(ranked))

    def grow(self, counts, min_count=1, max_size=None):
        """A new vocabulary that keeps every existing id and appends the new data's frequent words
        (`counts`: token -> count)."""
        extra = Vocabulary.from_counts(counts, min_count=min_count).tokens[len(SPECIALS):]
        new = [t for t in extra if t not in self.index]
        if max_size is not None:
            new = new[: max(0, max_size - len(self.tokens))]
        return Vocabulary(self.tokens + new)

    def __len__(self):
        return len(self.tokens)

    def __contains__(self, token):
        return token in self.index

    def encode(self, tokens):
        return [self.index.get(t, UNK_ID) for t in tokens]

    def decode(self, ids):
        """Ids to tokens, stopping at the end token and leaving out the other reserved ones."""
        out = []
        for i in ids:
            i = int(i)
            if i == END_ID:
                break
            if i >= len(SPECIALS) and i < len(self.tokens):
                out.append(self.tokens[i])
        return out

    def to_json(self):
        return json.dumps({"tokens": self.tokens}, ensure_ascii=False, indent=0)

    @classmethod
    def from_json(cls, text):
        data = json.loads(text)
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ModelError("vocabulary must be an object with a list of strings under 'tokens'")
        return cls(tokens)
