"""The `chatbot` command: chat, reply, train, eval, info. Errors become one line on stderr and an exit code
(1 model or runtime, 2 usage or bad input); no traceback reaches the user."""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from . import __version__
from .config import MODES, DecodingConfig
from .errors import ChatbotError, UsageError

BATCH = 256


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def number(text):
    """A finite float for the options (argparse names this function in its error message)."""
    from .commands import finite_float

    return finite_float(text)


def _env(name, cast=str):
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return cast(value)
    except ValueError:
        raise UsageError(f"${name}: not a valid value: {value!r}") from None


# Options that take their default from the environment: option -> (variable, type).
ENV_DEFAULTS = {"mode": ("CHATBOT_MODE", str), "temperature": ("CHATBOT_TEMPERATURE", number)}


def decoding_options(parser):
    g = parser.add_argument_group("decoding")
    g.add_argument("--mode", choices=MODES, help="greedy, sample or beam ($CHATBOT_MODE)")
    g.add_argument("--temperature", type=number, help="sampling temperature > 0 ($CHATBOT_TEMPERATURE)")
    g.add_argument("--top-k", type=int, help="sample from the k likeliest tokens (0: all)")
    g.add_argument("--top-p", type=number, help="nucleus sampling: smallest set with this much probability")
    g.add_argument("--beam", type=int, help="beam width")
    g.add_argument("--length-penalty", type=number, help="beam length penalty alpha (0: none)")
    g.add_argument("--no-repeat-ngram", type=int, help="block repeated n-grams of this size (0: off)")
    g.add_argument("--min-length", type=int, help="minimum reply length in tokens")
    g.add_argument("--max-length", type=int, help="maximum reply length in tokens")
    g.add_argument("--n-best", type=int, help="candidates per input (reply, eval)")
    g.add_argument("--rerank", type=number, help="anti-generic (MMI) reranking weight (0: off)")
    g.add_argument("--seed", type=int, help="random seed for reproducible sampling")


def decoding_overrides(args):
    """The decoding settings given as options or, for those in ENV_DEFAULTS, in the environment; validated, so
    bad values are usage errors found before the model loads. A bad environment value names its variable."""
    names = [f.name for f in DecodingConfig.__dataclass_fields__.values()]
    overrides = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    DecodingConfig(**overrides).validate()
    for field, (variable, cast) in ENV_DEFAULTS.items():
        if field not in overrides and (value := _env(variable, cast)) is not None:
            try:
                DecodingConfig(**{**overrides, field: value}).validate()
            except UsageError as exc:
                raise UsageError(f"${variable}: {exc}") from None
            overrides[field] = value
    return overrides


def bot_options(args):
    """Decoding settings for the Chatbot. How many candidates to show is the command's business, not the bot's."""
    options = decoding_overrides(args)
    options.pop("n_best", None)
    return options


def load_bot(args):
    from .bot import Chatbot

    return Chatbot.load(args.model, **bot_options(args))


def build_parser():
    common = _Parser(add_help=False)
    common.add_argument("--model", metavar="DIR", help="model bundle directory ($CHATBOT_MODEL; default: shipped)")
    decoding_options(common)

    parser = _Parser(prog="chatbot", parents=[common], description="A seq2seq LSTM chatbot for the terminal.")
    parser.add_argument("--version", action="version", version=f"chatbot {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    sub.add_parser("chat", parents=[common], help="chat in the terminal (the default on a terminal)")
    reply = sub.add_parser("reply", parents=[common], help="print one reply per input (argument or stdin lines)")
    reply.add_argument("text", nargs="*", help="the message; without it, each stdin line is one message")
    reply.add_argument("--json", action="store_true",
                       help="one JSON object per reply (with --n-best: per input, with a candidates list)")
    reply.add_argument("--file", metavar="IN", help="read messages from IN, one per line ('-': stdin)")
    reply.add_argument("--out", metavar="OUT", help="write JSON lines to OUT (atomically) instead of stdout")
    sub.add_parser("info", parents=[common], help="show the model's config and training summary")
    from . import eval_cli, train_cli

    train_cli.add_parser(sub)
    eval_cli.add_parser(sub, common)
    return parser


def _split_lines(data):
    from .bot import clean_text

    # Only newlines end a line: str.splitlines would also split on form feeds and other controls in the input.
    text = clean_text(data.decode("utf-8", errors="replace"))
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _read_input(path):
    if path in (None, "-"):
        return _split_lines(sys.stdin.buffer.read())
    try:
        return _split_lines(Path(path).read_bytes())
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None


class _Sink:
    """Where replies go: stdout, or a file written atomically (a temporary file beside it, renamed into place
    once complete), created before any decoding so a bad path fails fast."""

    def __init__(self, path):
        self.path, self.tmp = path, None
        if path is None:
            self.file = sys.stdout
            return
        target = Path(path)
        if target.is_dir():
            raise UsageError(f"{path}: is a directory, not a file to write")
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as exc:
            raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None
        from .transcript import new_file_mode

        os.fchmod(fd, new_file_mode())
        self.file = os.fdopen(fd, "w", encoding="utf-8", errors="replace")

    def write(self, line):
        self.file.write(line + "\n")

    def commit(self):
        self.file.flush()
        if self.tmp is None:
            return
        try:
            os.fsync(self.file.fileno())
            self.file.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.discard()
            raise ChatbotError(f"{self.path}: cannot write ({exc.strerror or exc})") from None

    def discard(self):
        if self.tmp is not None:
            self.file.close()
            try:
                os.unlink(self.tmp)
            except OSError:
                pass


def _record(text, candidates, n, mode):
    if n == 1:
        return candidates[0].to_dict()
    return {"input": text, "mode": candidates[0].mode if candidates else mode,
            "candidates": [{k: v for k, v in c.to_dict().items() if k not in ("input", "mode")} for c in candidates]}


def cmd_reply(args):
    text_args, path, out = args.text, getattr(args, "file", None), getattr(args, "out", None)
    n, as_json = getattr(args, "n_best", None) or 1, args.json or out is not None
    if text_args and path:
        raise UsageError("give the message as an argument or with --file, not both")
    if text_args:
        from .bot import clean_text

        lines = [clean_text(" ".join(text_args))]
        if not lines[0].strip():
            raise UsageError("empty input: give some words to reply to")
    else:
        lines = _read_input(path)
        if not any(line.strip() for line in lines):
            raise UsageError(f"no input: {path} has no messages" if path not in (None, "-") else
                             "no input: give the message as an argument or as lines on stdin")
    sink = _Sink(out)
    try:
        bot = load_bot(args)
        _reply_all(bot, lines, sink, n, as_json)
        sink.commit()
    except BaseException:
        sink.discard()
        raise
    return 0


def _reply_all(bot, lines, sink, n, as_json):
    # Decoding many lines together is what makes batches fast; a chunk at a time keeps the output flowing.
    for start in range(0, len(lines), BATCH):
        chunk = lines[start:start + BATCH]
        wanted = [i for i, line in enumerate(chunk) if line.strip()]
        results = bot.respond_many([chunk[i] for i in wanted], n=n) if wanted else []
        by_line = dict(zip(wanted, results))
        for i, line in enumerate(chunk):
            candidates = by_line.get(i)
            if as_json:
                if candidates is not None:
                    sink.write(json.dumps(_record(line, candidates, n, bot.decoding.mode), ensure_ascii=False))
            elif n == 1:
                sink.write(candidates[0].reply if candidates else "")  # a blank line keeps its place
            else:
                if start + i:
                    sink.write("")  # a blank line between inputs' candidate lists
                for c in candidates or ():
                    sink.write(f"{c.score:.4f}\t{c.reply}")


def cmd_chat(args):
    if not sys.stdin.isatty():
        args.text, args.json, args.file, args.out = [], False, None, None
        return cmd_reply(args)
    from .bot import Chatbot

    options = bot_options(args)
    bot = Chatbot.load(args.model, **options)
    from . import repl

    return repl.run(bot, options)


def cmd_info(args):
    bot = load_bot(args)
    print(json.dumps(bot.info(), indent=2, ensure_ascii=False))
    return 0


def main(argv=None):
    try:
        args = build_parser().parse_args(argv)
        command = args.command or "chat"
        if command == "train":
            from . import train_cli

            return train_cli.run(args)
        if command == "eval":
            from . import eval_cli

            return eval_cli.run(args)
        return {"chat": cmd_chat, "reply": cmd_reply, "info": cmd_info}[command](args)
    except ChatbotError as exc:
        print(f"chatbot: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); that is not an error of ours.
        sys.stderr.close()
        return 0
    except OSError as exc:
        print(f"chatbot: {exc}", file=sys.stderr)
        return 1
    except MemoryError:
        print("chatbot: out of memory", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
