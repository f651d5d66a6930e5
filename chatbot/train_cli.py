"""`chatbot train`: the options are defined here, without TensorFlow; training/ is imported only to run."""

import argparse
import importlib.util
import signal
import sys

from .errors import ChatbotError, UsageError

FORMATS = ("auto", "dailydialog", "cornell", "chatterbot", "tsv", "jsonl", "text")

# CLI option -> TrainSettings field, for everything a preset sets and a user may override.
OVERRIDES = {"epochs": int, "max_steps": int, "time_limit": float, "batch_size": int, "units": int,
             "embedding_dim": int, "layers": int, "cell": str, "dropout": float, "learning_rate": float,
             "max_vocab": int, "min_count": int, "max_source_len": int, "max_target_len": int, "context_turns": int,
             "seed": int, "patience": int, "checkpoint_every": int, "valid_fraction": float, "lr_decay": float,
             "clipnorm": float, "lr_schedule": str, "strategy": str}


def add_parser(sub):
    p = sub.add_parser("train", help="train a model on dialogue data and export a bundle",
                       description="Train a model and export a bundle. Without --data, trains on the English "
                                   "chatterbot-corpus (needs: pip install 'chatbot[train]').")
    p.add_argument("--data", metavar="PATH", help="corpus file or folder (default: chatterbot-corpus English)")
    p.add_argument("--format", default="auto", help=f"corpus format: {', '.join(FORMATS)} (default: auto)")
    p.add_argument("--valid", metavar="PATH", help="validation corpus (default: hold out a share of --data)")
    p.add_argument("--valid-format", default="auto", help="format of --valid")
    p.add_argument("--out", metavar="DIR", required=True, help="where to write the model bundle")
    p.add_argument("--run-dir", metavar="DIR", help="checkpoints, logs and cache (default: OUT.run)")
    p.add_argument("--preset", help="tiny, small or base (training/presets/*.toml; default: small)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --run-dir")
    p.add_argument("--init-from", metavar="BUNDLE", help="fine-tune starting from a trained bundle")
    p.add_argument("--grow-vocab", action="store_true", help="with --init-from: add the new data's words")
    p.add_argument("--tie-embeddings", action=argparse.BooleanOptionalAction, default=None,
                   help="reuse the embedding matrix as the output layer (default: as the preset says)")
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None,
                   help="compile the training step with XLA (default: as the preset says)")
    p.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                   help="bfloat16 arithmetic, float32 weights (default: as the preset says)")
    for name, kind in OVERRIDES.items():
        flag = "--" + name.replace("_", "-")
        if name == "units":
            p.add_argument(flag, dest="encoder_units", type=int, metavar="N", help="encoder units per direction")
        elif name == "strategy":
            p.add_argument(flag, choices=("none", "mirrored", "multi-worker"), help="tf.distribute strategy")
        elif name == "lr_schedule":
            p.add_argument(flag, choices=("plateau", "cosine"), help="learning-rate schedule")
        elif name == "cell":
            p.add_argument(flag, choices=("lstm", "gru"), help="recurrent cell")
        else:
            p.add_argument(flag, type=kind, metavar=name.split("_")[-1].upper())
    return p


def run(args):
    if args.format not in FORMATS:
        raise UsageError(f"unknown corpus format {args.format!r} (supported: {', '.join(FORMATS)})")
    if importlib.util.find_spec("tensorflow") is None:
        raise ChatbotError("training needs TensorFlow: pip install 'chatbot[train]'")
    from training.run import Run  # reads the corpus without TensorFlow: a bad one is reported at once

    flags = ["encoder_units", "xla", "tie_embeddings", "mixed_precision"]
    overrides = {name: getattr(args, name, None) for name in list(OVERRIDES) + flags}
    overrides.pop("units")
    run_ = Run(args.out, args.run_dir, log=lambda line: print(line, flush=True))
    if args.resume:
        # The command line that started the run, with --resume added, continues it; --init-from is then moot.
        run_.resume_from(overrides, preset=args.preset, data=args.data)
    else:
        run_.start(args.data, args.format, args.preset or "small", overrides, valid=args.valid,
                   valid_format=args.valid_format, init_from=args.init_from, grow_vocab=args.grow_vocab)
    # Ctrl-C (SIGINT) is turned into KeyboardInterrupt by Python; SIGTERM (kill) gets the same treatment. Once
    # training runs, the trainer catches both itself and stops after the current step, saving a checkpoint.
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        from training.train import Trainer

        return Trainer(run_).fit()
    except FloatingPointError as exc:
        raise ChatbotError(str(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.stdout.flush()
