"""Training settings: a preset TOML file plus command-line overrides, in one dataclass saved with each run."""

import dataclasses
import tomllib
from pathlib import Path

from chatbot.config import DecodingConfig, ModelConfig
from chatbot.errors import UsageError

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
STRATEGIES = ("none", "mirrored", "multi-worker")
LR_SCHEDULES = ("plateau", "cosine")


def preset_names():
    return sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))


@dataclasses.dataclass
class TrainSettings:
    preset: str = "small"
    # model
    embedding_dim: int = 128
    encoder_units: int = 128
    layers: int = 1
    cell: str = "lstm"
    dropout: float = 0.2
    max_source_len: int = 30
    max_target_len: int = 30
    context_turns: int = 1
    tie_embeddings: bool = False
    # data
    min_count: int = 1
    max_vocab: int = 4000
    valid_fraction: float = 0.05
    # optimisation
    batch_size: int = 32
    epochs: int = 30
    max_steps: int = 0
    time_limit: float = 0.0  # minutes of training (validation included, over all resumes) before it stops; 0: none
    learning_rate: float = 0.002
    # "plateau": multiply the rate by lr_decay after each epoch whose validation loss did not improve.
    # "cosine": from learning_rate down to 0 along a half cosine over the run's budget (epochs, --max-steps or
    # --time-limit, whichever ends first), so a time-limited run ends on its lowest rate.
    lr_schedule: str = "plateau"
    lr_decay: float = 0.5
    clipnorm: float = 5.0
    patience: int = 0
    # "best": the bundle keeps the weights with the lowest validation loss. "last": validation is only
    # reported, as for a small FAQ-like corpus that the bot should know by heart (the default model).
    keep: str = "best"
    seed: int = 1
    checkpoint_every: int = 500
    # Off: on this CPU the XLA-compiled step was no faster than the plain graph (bin/bench_training.py
    # --compare-xla), and it compiles once per batch shape.
    xla: bool = False
    # bfloat16 arithmetic with float32 weights (Keras' mixed_bfloat16 policy): 1.5x the tokens/s on this CPU
    # (AVX512-BF16), and what recent GPUs are built for. Bundles stay float32.
    mixed_precision: bool = False
    strategy: str = "none"
    # The bundle's default decoding (a preset's [decoding] table, DecodingConfig fields); empty: the defaults.
    decoding: dict = dataclasses.field(default_factory=dict)

    # Fields that change the network or the data it sees; a run resumed with different ones is a different run.
    SHAPING = ("embedding_dim", "encoder_units", "layers", "cell", "max_source_len", "max_target_len",
               "context_turns", "tie_embeddings", "min_count", "max_vocab", "valid_fraction", "batch_size", "seed")

    def model_config(self, vocab_size):
        return ModelConfig(vocab_size=vocab_size, embedding_dim=self.embedding_dim,
                           encoder_units=self.encoder_units, layers=self.layers, cell=self.cell,
                           dropout=self.dropout, max_source_len=self.max_source_len,
                           max_target_len=self.max_target_len, context_turns=self.context_turns,
                           tie_embeddings=self.tie_embeddings)

    def validate(self):
        ModelConfig(vocab_size=10, **{k: getattr(self, k) for k in (
            "embedding_dim", "encoder_units", "layers", "cell", "dropout", "max_source_len", "max_target_len",
            "context_turns", "tie_embeddings")}).validate(UsageError)
        positive = ("batch_size", "max_vocab", "min_count", "checkpoint_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 1, not {getattr(self, name)}")
        # --epochs 0 exports the starting weights untrained
        for name in ("epochs", "max_steps", "patience", "time_limit"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be >= 0, not {getattr(self, name)}")
        if self.keep not in ("best", "last"):
            raise UsageError(f"keep must be 'best' or 'last', not {self.keep!r}")
        if not 0 < self.lr_decay <= 1:
            raise UsageError(f"lr_decay must be in (0, 1], not {self.lr_decay}")
        if not self.clipnorm > 0:
            raise UsageError(f"clipnorm must be > 0, not {self.clipnorm}")
        if not self.learning_rate > 0:
            raise UsageError(f"--learning-rate must be > 0, not {self.learning_rate}")
        if not 0 <= self.valid_fraction < 1:
            raise UsageError(f"valid_fraction must be in [0, 1), not {self.valid_fraction}")
        DecodingConfig.from_dict(self.decoding, UsageError)
        if self.lr_schedule not in LR_SCHEDULES:
            raise UsageError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}")
        if self.strategy not in STRATEGIES:
            raise UsageError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        return self

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def differences(self, other):
        return [name for name in self.SHAPING if getattr(self, name) != getattr(other, name)]


def load_preset(name, **overrides):
    """The preset's settings with every non-None override applied on top."""
    path = PRESETS_DIR / f"{name}.toml"
    if not path.is_file():
        raise UsageError(f"unknown preset {name!r} (available: {', '.join(preset_names())})")
    with open(path, "rb") as f:
        try:
            sections = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"{path}: {exc}") from None
    flat = {"preset": name, "decoding": sections.pop("decoding", {})}
    for table in sections.values():
        flat.update(table)
    unknown = set(flat) - {f.name for f in dataclasses.fields(TrainSettings)}
    if unknown:
        raise UsageError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
    flat.update({k: v for k, v in overrides.items() if v is not None})
    return TrainSettings(**flat).validate()
