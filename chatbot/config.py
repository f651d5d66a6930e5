"""The model's sizes and the decoding settings, as dataclasses that round-trip through JSON."""

import dataclasses

from .errors import ModelError, UsageError

CELLS = ("lstm", "gru")
MODES = ("greedy", "sample", "beam")


def _from_dict(cls, data, error):
    if not isinstance(data, dict):
        raise error(f"{cls.__name__} must be a JSON object")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise error(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    try:
        obj = cls(**data)
    except TypeError as exc:
        raise error(f"bad {cls.__name__}: {exc}") from None
    obj.validate(error)
    return obj


@dataclasses.dataclass
class ModelConfig:
    """Everything needed to rebuild the network. The decoder is twice as wide as one encoder direction,
    so each decoder layer starts from the concatenated forward and backward encoder states."""

    vocab_size: int
    embedding_dim: int = 128
    encoder_units: int = 128
    layers: int = 1
    cell: str = "lstm"
    dropout: float = 0.1
    max_source_len: int = 30
    max_target_len: int = 30
    context_turns: int = 1
    # The output layer reuses the embedding matrix (through a decoder-to-embedding projection): fewer
    # parameters, a cheaper output step, and rare words learn from both ends.
    tie_embeddings: bool = False

    @property
    def decoder_units(self):
        return 2 * self.encoder_units

    def validate(self, error=ModelError):
        if self.cell not in CELLS:
            raise error(f"cell must be one of {', '.join(CELLS)}, not {self.cell!r}")
        for name in ("vocab_size", "embedding_dim", "encoder_units", "layers", "max_source_len",
                     "max_target_len", "context_turns"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise error(f"{name} must be a positive integer, not {value!r}")
        if not 0 <= self.dropout < 1:
            raise error(f"dropout must be in [0, 1), not {self.dropout!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise error(f"tie_embeddings must be true or false, not {self.tie_embeddings!r}")
        return self

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        return _from_dict(cls, data, ModelError)


@dataclasses.dataclass
class DecodingConfig:
    """How replies are chosen. The same settings drive the REPL, `reply`, `eval` and the Python API."""

    mode: str = "beam"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    beam: int = 5
    length_penalty: float = 1.0
    no_repeat_ngram: int = 3
    min_length: int = 1
    max_length: int = 30
    n_best: int = 1
    rerank: float = 0.0
    seed: int | None = None

    def validate(self, error=UsageError):
        if self.mode not in MODES:
            raise error(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not self.temperature > 0:
            raise error(f"temperature must be > 0, not {self.temperature!r}")
        if not 0 < self.top_p <= 1:
            raise error(f"top-p must be in (0, 1], not {self.top_p!r}")
        if self.top_k < 0:
            raise error(f"top-k must be >= 0 (0 turns it off), not {self.top_k!r}")
        if self.beam < 1:
            raise error(f"beam must be >= 1, not {self.beam!r}")
        if self.max_length < 1:
            raise error(f"max-length must be >= 1, not {self.max_length!r}")
        if self.min_length < 0 or self.min_length > self.max_length:
            raise error(f"min-length must be between 0 and max-length ({self.max_length}), not {self.min_length!r}")
        if self.no_repeat_ngram < 0:
            raise error(f"no-repeat-ngram must be >= 0 (0 turns it off), not {self.no_repeat_ngram!r}")
        if self.n_best < 1:
            raise error(f"n-best must be >= 1, not {self.n_best!r}")
        if self.rerank < 0:
            raise error(f"rerank must be >= 0 (0 turns it off), not {self.rerank!r}")
        return self

    def replace(self, **changes):
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data, error=ModelError):
        return _from_dict(cls, data, error)
