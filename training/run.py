"""A training run's directory: settings, vocabulary, id cache, checkpoints and logs, and what goes into the
exported bundle. Fresh runs read the corpus; resumed runs reuse everything and check nothing shaping changed."""

import json
import math
import os
import shutil
import time
from pathlib import Path

from chatbot import bundle as bundle_io
from chatbot import corpora
from chatbot.config import DecodingConfig
from chatbot.errors import UsageError
from chatbot.tokenizer import Tokenizer, Vocabulary

from . import checkpoints, pipeline
from .distribute import worker_index
from .settings import TrainSettings, load_preset

MODEL_FIELDS = ("embedding_dim", "encoder_units", "layers", "cell", "max_source_len", "max_target_len",
                "context_turns")


def _write_json(path, data):
    from .checkpoints import atomic_write

    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


class Run:
    def __init__(self, out, run_dir=None, log=print):
        self.out = Path(out)
        self._set_dir(Path(run_dir) if run_dir else self.out.with_name(self.out.name + ".run"))
        self.log = log
        self.resume = False
        self.init_from = None
        self.grow_from = None
        self.chief = True
        self.started = time.time()

    def _set_dir(self, path):
        self.dir = path
        self.checkpoint_dir = self.dir / "checkpoints"
        self.cache_dir = self.dir / "cache"

    def _as_worker(self, strategy):
        """Multi-worker training: every worker but the chief keeps its cache, checkpoints and logs in a folder
        of its own inside the run directory, and writes no bundle."""
        index = worker_index(strategy)
        if index:
            self.chief = False
            self._set_dir(self.dir / f"worker-{index}")

    # -- setting up -------------------------------------------------------------------------------------------
    def start(self, data, fmt, preset, overrides, valid=None, valid_format="auto", init_from=None,
              grow_vocab=False):
        settings = load_preset(preset, **overrides)
        if self.out.exists() and not (self.out / "config.json").is_file() and (
                not self.out.is_dir() or any(self.out.iterdir())):
            raise UsageError(f"--out {self.out} exists and is not a model bundle; it would be replaced, so "
                             f"choose another path")
        tokenizer = Tokenizer()
        old_vocab = None
        if init_from:
            self.init_from = bundle_io.load(init_from)
            clash = [k for k in MODEL_FIELDS if overrides.get(k) not in (None, getattr(self.init_from.model, k))]
            if clash:
                raise UsageError(f"--init-from {init_from}: the model's {', '.join(clash)} come from the bundle "
                                 f"({', '.join(f'{k} {getattr(self.init_from.model, k)}' for k in clash)}); "
                                 f"leave those options out")
            settings = TrainSettings.from_dict({**settings.to_dict(), **{
                k: getattr(self.init_from.model, k) for k in MODEL_FIELDS}})
            tokenizer, old_vocab = self.init_from.tokenizer, self.init_from.vocab
        elif grow_vocab:
            raise UsageError("--grow-vocab needs --init-from BUNDLE")
        corpus_name = str(data) if data else "chatterbot-corpus (English)"
        data = data or corpora.default_corpus_path()
        self._as_worker(settings.strategy)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(exist_ok=True)
        stats, counts = pipeline.tokenize_corpus(data, fmt, tokenizer, settings, self.cache_dir, valid, valid_format)
        self._clear_previous()  # only once the new corpus has been read
        if old_vocab is not None:
            vocab = old_vocab.grow(counts, settings.min_count, settings.max_vocab) if grow_vocab else old_vocab
        else:
            vocab = pipeline.build_vocab(counts, settings)
        self.manifest = pipeline.write_shards(self.cache_dir, vocab)
        if not self.manifest["train"]["pairs"]:
            raise UsageError(f"{data}: every usable pair went to validation; give more data, a --valid file or "
                             f"a smaller --valid-fraction")
        for line in stats.report_lines(vocab, self.manifest["train"]["unknown_rate"]):
            self.log(line)
        (self.dir / "vocab.json").write_text(vocab.to_json(), encoding="utf-8")
        self.summary = {"corpus": corpus_name, "format": fmt, "pairs": self.manifest["train"]["pairs"],
                        "valid_pairs": self.manifest["valid"]["pairs"], "preset": preset,
                        "init_from": str(init_from) if init_from else None, "grow_vocab": bool(grow_vocab),
                        "old_vocab_size": len(old_vocab) if old_vocab else None, "report": stats.to_dict()}
        _write_json(self.dir / "run.json", {"settings": settings.to_dict(), "tokenizer": tokenizer.get_config(),
                                            "data": str(Path(data).resolve()), "summary": self.summary})
        self._set(settings, tokenizer, vocab)
        self.grow_from = len(old_vocab) if grow_vocab and old_vocab is not None else None
        return self

    def _clear_previous(self):
        """A fresh run in the directory of an earlier one starts its checkpoints and logs afresh."""
        if checkpoints.latest(self.checkpoint_dir) is not None or (self.dir / "log.csv").exists():
            self.log(f"note: {self.dir} held an earlier run; its checkpoints and logs are replaced "
                     f"(use --resume to continue it instead)")
        checkpoints.clear(self.checkpoint_dir)
        (self.dir / "log.csv").unlink(missing_ok=True)
        shutil.rmtree(self.dir / "tensorboard", ignore_errors=True)

    def resume_from(self, overrides, preset=None, data=None):
        """Continue the run in the run directory. Overrides may change how long and how fast it trains, not
        what it trains (the model, the data, the batches)."""
        index = worker_index("multi-worker")
        if index and (self.dir / f"worker-{index}" / "run.json").is_file():
            self._as_worker("multi-worker")
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
        given = {k: v for k, v in overrides.items() if v is not None}
        if preset is not None:  # a preset named again must describe the same run
            given = {**{k: v for k, v in load_preset(preset, **given).to_dict().items()
                        if k in TrainSettings.SHAPING}, **given}
        wanted = TrainSettings.from_dict({**saved.to_dict(), **given})
        changed = saved.differences(wanted)
        corpus = meta.get("data")
        if data is not None and corpus is not None and str(Path(data).resolve()) != corpus:
            changed.append(f"--data (the run trains on {corpus})")
        if changed:
            raise UsageError(f"--resume: {self.dir} was made by a different config "
                             f"(differs in: {', '.join(changed)}); start a new run with another --run-dir")
        if checkpoints.latest(self.checkpoint_dir) is None:
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
        """Write the bundle (the chief only)."""
        from .export import export_bundle

        if not self.chief:
            return
        # The bundle holds the best weights, or with keep = "last" the last ones: report that model's loss.
        loss = progress.get("last_val_loss" if self.settings.keep == "last" else "best_val_loss")
        summary = {**{k: v for k, v in self.summary.items() if k != "report"},
                   "epochs": progress["epoch"], "steps": progress["step"],
                   "train_loss": progress.get("last_train_loss"), "val_loss": loss,
                   "val_perplexity": None if loss is None else math.exp(min(loss, 50)),
                   "tokens_per_second": progress.get("tokens_per_second"),
                   "train_seconds": round(progress.get("train_seconds", 0.0), 1),
                   "dropped": self.summary.get("report", {}).get("dropped")}
        decoding = DecodingConfig.from_dict(self.settings.decoding) if self.settings.decoding else None
        export_bundle(model, self.model_config, self.vocab, self.out, self.tokenizer, decoding=decoding,
                      training_summary=summary)

    def save_keras_model(self, model):
        """model.keras beside the checkpoints, holding the bundle's weights (the best ones), for further work in
        Keras. Written atomically; the live model takes the bundle's weights."""
        from .export import assign_weights

        if not self.chief:
            return
        assign_weights(model, self.model_config, bundle_io.load(self.out).weights)
        path = self.dir / "model.keras"
        tmp = path.with_name("tmp-" + path.name)
        try:
            model.save(tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
