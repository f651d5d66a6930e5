"""A training run's directory: settings, vocabulary, id cache, checkpoints and logs, and what goes into the
exported bundle. Fresh runs read the corpus; resumed runs reuse everything and check nothing shaping changed."""

import json
import os
import time
from pathlib import Path

from chatbot import bundle as bundle_io
from chatbot import corpora
from chatbot.errors import UsageError
from chatbot.tokenizer import Tokenizer, Vocabulary

from . import pipeline
from .settings import TrainSettings, load_preset

MODEL_FIELDS = ("embedding_dim", "encoder_units", "layers", "cell", "max_source_len", "max_target_len",
                "context_turns")


def _write_json(path, data):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class Run:
    def __init__(self, out, run_dir=None, log=print):
        self.out = Path(out)
        self.dir = Path(run_dir) if run_dir else self.out.with_name(self.out.name + ".run")
        self.checkpoint_dir = self.dir / "checkpoints"
        self.cache_dir = self.dir / "cache"
        self.log = log
        self.resume = False
        self.init_from = None
        self.started = time.time()

    # -- setting up -------------------------------------------------------------------------------------------
    def start(self, data, fmt, preset, overrides, valid=None, valid_format="auto", init_from=None,
              grow_vocab=False):
        settings = load_preset(preset, **overrides)
        tokenizer = Tokenizer()
        old_vocab = None
        if init_from:
            self.init_from = bundle_io.load(init_from)
            settings = TrainSettings.from_dict({**settings.to_dict(), **{
                k: getattr(self.init_from.model, k) for k in MODEL_FIELDS}})
            tokenizer, old_vocab = self.init_from.tokenizer, self.init_from.vocab
        elif grow_vocab:
            raise UsageError("--grow-vocab needs --init-from BUNDLE")
        data = data or corpora.default_corpus_path()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(exist_ok=True)
        stats, counts = pipeline.tokenize_corpus(data, fmt, tokenizer, settings, self.cache_dir, valid, valid_format)
        if old_vocab is not None:
            vocab = old_vocab.grow(counts, settings.min_count, settings.max_vocab) if grow_vocab else old_vocab
        else:
            vocab = pipeline.build_vocab(counts, settings)
        self.manifest = pipeline.write_shards(self.cache_dir, vocab)
        for line in stats.report_lines(vocab, self.manifest["train"]["unknown_rate"]):
            self.log(line)
        (self.dir / "vocab.json").write_text(vocab.to_json(), encoding="utf-8")
        self.summary = {"corpus": str(data), "format": fmt, "pairs": self.manifest["train"]["pairs"],
                        "valid_pairs": self.manifest["valid"]["pairs"], "preset": preset,
                        "init_from": str(init_from) if init_from else None, "grow_vocab": bool(grow_vocab),
                        "old_vocab_size": len(old_vocab) if old_vocab else None, "report": stats.to_dict()}
        _write_json(self.dir / "run.json", {"settings": settings.to_dict(), "tokenizer": tokenizer.get_config(),
                                            "summary": self.summary})
        self._set(settings, tokenizer, vocab)
        self.grow_from = len(old_vocab) if grow_vocab and old_vocab is not None else None
        return self

    def resume_from(self, overrides):
        meta_path = self.dir / "run.json"
        if not meta_path.is_file():
            raise UsageError(f"--resume: no training run in {self.dir} (train once without --resume, "
                             f"or point --run-dir at the run)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            saved = TrainSettings.from_dict(meta["settings"])
            self.manifest = json.loads((self.cache_dir / "manifest.json").read_text())
            vocab = Vocabulary.from_json((self.dir / "vocab.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"--resume: {self.dir} is not a usable run ({exc})") from None
        wanted = TrainSettings.from_dict({**saved.to_dict(), **{k: v for k, v in overrides.items() if v is not None}})
        changed = saved.differences(wanted)
        if changed:
            raise UsageError(f"--resume: {self.dir} was made by a different config "
                             f"(differs in: {', '.join(changed)}); start a new run with another --run-dir")
        from .checkpoints import latest

        if latest(self.checkpoint_dir) is None:
            raise UsageError(f"--resume: {self.dir} has no checkpoint yet; start it again without --resume")
        self.resume = True
        self.summary = meta.get("summary", {})
        self.grow_from = None
        self._set(wanted.validate(), Tokenizer.from_config(meta.get("tokenizer", {})), vocab)
        return self

    def _set(self, settings, tokenizer, vocab):
        self.settings, self.tokenizer, self.vocab = settings, tokenizer, vocab
        self.model_config = settings.model_config(len(vocab))

    def initialise(self, model):
        """Fine-tuning starts from the bundle's weights; a resumed run gets its weights from the checkpoint."""
        if self.init_from is not None and not self.resume:
            from .export import assign_weights

            assign_weights(model, self.model_config, self.init_from.weights, old_vocab_size=self.grow_from)
            self.log(f"initialised from {self.init_from.path}"
                     + (f", vocabulary grown {self.grow_from} -> {len(self.vocab)}" if self.grow_from else ""))

    # -- output -----------------------------------------------------------------------------------------------
    def export(self, model, progress):
        from .distribute import is_chief
        from .export import export_bundle
        from .train import save_keras_model, valid_perplexity

        if not is_chief():
            return
        summary = {**{k: v for k, v in self.summary.items() if k != "report"},
                   "epochs": progress["epoch"], "steps": progress["step"],
                   "train_loss": progress.get("last_train_loss"), "val_loss": progress.get("best_val_loss"),
                   "val_perplexity": valid_perplexity(progress),
                   "tokens_per_second": progress.get("tokens_per_second"),
                   "train_seconds": round(progress.get("train_seconds", 0.0), 1),
                   "dropped": self.summary.get("report", {}).get("dropped")}
        export_bundle(model, self.model_config, self.vocab, self.out, self.tokenizer, training_summary=summary)
        save_keras_model(model, self.dir / "model.keras")
