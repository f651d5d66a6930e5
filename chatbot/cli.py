"""The `chatbot` command: chat, reply, train, eval, info. Errors become one line on stderr and an exit code
(1 model or runtime, 2 usage or bad input); no traceback reaches the user."""

import argparse
import json
import os
import sys

from . import __version__
from .config import MODES, DecodingConfig
from .errors import ChatbotError, UsageError

BATCH = 256


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _env(name, cast=str):
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return cast(value)
    except ValueError:
        raise UsageError(f"${name}: not a valid value: {value!r}") from None


def decoding_options(parser):
    g = parser.add_argument_group("decoding")
    g.add_argument("--mode", choices=MODES, help="greedy, sample or beam ($CHATBOT_MODE)")
    g.add_argument("--temperature", type=float, help="sampling temperature > 0 ($CHATBOT_TEMPERATURE)")
    g.add_argument("--top-k", type=int, help="sample from the k likeliest tokens (0: all)")
    g.add_argument("--top-p", type=float, help="nucleus sampling: smallest set with this much probability")
    g.add_argument("--beam", type=int, help="beam width")
    g.add_argument("--length-penalty", type=float, help="beam length penalty alpha (0: none)")
    g.add_argument("--no-repeat-ngram", type=int, help="block repeated n-grams of this size (0: off)")
    g.add_argument("--min-length", type=int, help="minimum reply length in tokens")
    g.add_argument("--max-length", type=int, help="maximum reply length in tokens")
    g.add_argument("--n-best", type=int, help="candidates to return")
    g.add_argument("--rerank", type=float, help="anti-generic (MMI) reranking weight (0: off)")
    g.add_argument("--seed", type=int, help="random seed for reproducible sampling")


def decoding_overrides(args):
    names = [f.name for f in DecodingConfig.__dataclass_fields__.values()]
    overrides = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    overrides.setdefault("mode", _env("CHATBOT_MODE"))
    overrides.setdefault("temperature", _env("CHATBOT_TEMPERATURE", float))
    return {k: v for k, v in overrides.items() if v is not None}


def load_bot(args):
    from .bot import Chatbot

    options = decoding_overrides(args)
    if options.get("mode") not in (None, *MODES):
        raise UsageError(f"mode must be one of {', '.join(MODES)}, not {options['mode']!r}")
    DecodingConfig(**options).validate()  # bad options are usage errors, found before the model loads
    return Chatbot.load(args.model, **options)


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
    reply.add_argument("--json", action="store_true", help="one JSON object per reply")
    sub.add_parser("info", parents=[common], help="show the model's config and training summary")
    from . import eval_cli, train_cli

    train_cli.add_parser(sub)
    eval_cli.add_parser(sub, common)
    return parser


def _stdin_lines():
    data = sys.stdin.buffer.read()
    return data.decode("utf-8", errors="replace").splitlines()


def _print_reply(result, as_json):
    print(json.dumps(result.to_dict(), ensure_ascii=False) if as_json else result.reply, flush=False)


def cmd_reply(args):
    if args.text:
        text = " ".join(args.text)
        if not text.strip():
            raise UsageError("empty input: give some words to reply to")
        bot = load_bot(args)
        _print_reply(bot.respond(text), args.json)
        return 0
    bot = load_bot(args)
    lines = _stdin_lines()
    if not any(line.strip() for line in lines):
        raise UsageError("no input: give the message as an argument or as lines on stdin")
    for start in range(0, len(lines), BATCH):
        chunk = lines[start:start + BATCH]
        wanted = [i for i, line in enumerate(chunk) if line.strip()]
        results = bot.respond_many([chunk[i] for i in wanted]) if wanted else []
        by_line = dict(zip(wanted, results))
        for i in range(len(chunk)):
            if i in by_line:
                _print_reply(by_line[i][0], args.json)
            else:
                print("")  # a blank input line keeps its place, so output lines match input lines
    sys.stdout.flush()
    return 0


def cmd_chat(args):
    if not sys.stdin.isatty():
        args.text, args.json = [], False
        return cmd_reply(args)
    bot = load_bot(args)
    from . import repl

    return repl.run(bot, args)


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
    except MemoryError:
        print("chatbot: out of memory", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
