"""What the REPL does with a line: slash commands and messages, turned into output lines. No UI code, so the
same logic can be driven by any front end (and tested without a terminal)."""

import dataclasses
import difflib
import json
import math

from . import transcript
from .config import MODES
from .errors import ChatbotError

COMMANDS = {
    "/help": "show the commands",
    "/quit": "leave (also /exit or Ctrl-D)",
    "/exit": "leave",
    "/reset": "forget the conversation so far (the context the bot sees)",
    "/retry": "another reply to your last message",
    "/nbest": "N: the N best replies to your last message, with scores",
    "/set": "KEY VALUE: change a decoding setting (/set alone lists them)",
    "/mode": "greedy|sample|beam: how replies are chosen",
    "/save": "FILE.md|FILE.json: save the transcript",
    "/model": "DIR: switch to another model bundle",
    "/info": "the model's config, vocabulary and training summary",
}


def finite_float(text):
    """float(), refusing nan and infinities, which no setting can use."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


# /set keys and how their values are read; "none" turns the seed off.
SETTINGS = {"temperature": finite_float, "top_k": int, "top_p": finite_float, "beam": int, "max_length": int,
            "min_length": int, "seed": int, "rerank": finite_float, "length_penalty": finite_float,
            "no_repeat_ngram": int}
# Settings that only matter in one mode, so a change made in another mode can say so.
ONLY_IN = {"temperature": "sample", "top_k": "sample", "top_p": "sample", "beam": "beam", "length_penalty": "beam"}
MAX_NBEST = 50
HINT = "(type a message, /help for commands, or Ctrl-D to quit)"


@dataclasses.dataclass
class Result:
    lines: list = dataclasses.field(default_factory=list)  # (kind, text): kind is reply, info, hint or error
    quit: bool = False

    def add(self, kind, text):
        self.lines.append((kind, text))
        return self


def argument_choices(command):
    """Completions for a command's first argument."""
    return {"/mode": MODES, "/set": tuple(SETTINGS), "/help": tuple(c[1:] for c in COMMANDS)}.get(command, ())


def closest_command(name):
    match = difflib.get_close_matches(name, COMMANDS, n=1, cutoff=0.5)
    return match[0] if match else None


def handle(conversation, line):
    """Run one line from the user: a slash command or a message. ChatbotErrors become error lines."""
    text = line.strip()
    if not text:
        return Result().add("hint", HINT)
    if text.startswith("/") and len(text) > 1 and text[1] != "/" and not text[1].isspace():
        name, _, rest = text.partition(" ")
        name = name.lower()
        handler = _HANDLERS.get(name)
        if handler is None:
            guess = closest_command(name)
            tip = f"did you mean {guess}?" if guess else "type /help for commands"
            return Result().add("error", f"unknown command {name} — {tip}")
        try:
            return handler(conversation, rest.strip())
        except ChatbotError as exc:
            return Result().add("error", str(exc))
    if text.startswith("//"):  # a message that starts with a slash
        line = line.replace("/", "", 1)
    try:
        return Result().add("reply", conversation.say(line).reply)
    except ChatbotError as exc:
        return Result().add("error", str(exc))


def describe(reply, rank=None):
    per_token = reply.log_prob / (len(reply.tokens) + 1)
    prefix = f"{rank}. " if rank is not None else ""
    return f"{prefix}{reply.reply}  (score {reply.score:.3f}, {per_token:.3f}/token)"


def cmd_help(conv, arg):
    result = Result()
    if arg:
        name = "/" + arg.lstrip("/")
        if name in COMMANDS:
            return result.add("info", f"{name} {COMMANDS[name]}")
        return result.add("error", f"no command {name} — type /help for the list")
    width = max(map(len, COMMANDS))
    for name, text in COMMANDS.items():
        result.add("info", f"{name.ljust(width)}  {text}")
    result.add("info", "Start a message with // to send a line that begins with a slash.")
    return result


def cmd_quit(conv, arg):
    return Result(quit=True)


def cmd_reset(conv, arg):
    conv.reset()
    return Result().add("info", "(conversation reset)")


def cmd_retry(conv, arg):
    reply = conv.retry()
    if reply is None:
        return Result().add("error", "no other reply: the search found no more candidates (try /mode sample)")
    return Result().add("reply", reply.reply)


def cmd_nbest(conv, arg):
    try:
        n = int(arg) if arg else 5
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_NBEST:
        return Result().add("error", f"usage: /nbest N, with N a whole number from 1 to {MAX_NBEST}")
    result = Result()
    for rank, reply in enumerate(conv.candidates(n), 1):
        result.add("info", describe(reply, rank))
    return result


def _settings_line(bot):
    d = bot.decoding
    return "  ".join(f"{key} {getattr(d, key)}" for key in ("mode", *SETTINGS))


def cmd_set(conv, arg):
    parts = arg.split()
    if not parts:
        return Result().add("info", _settings_line(conv.bot))
    key = parts[0].lower().replace("-", "_")
    if key not in SETTINGS:
        match = difflib.get_close_matches(key, SETTINGS, n=1, cutoff=0.5)
        tip = f" — did you mean {match[0]}?" if match else f" (one of: {', '.join(SETTINGS)})"
        return Result().add("error", f"unknown setting {parts[0]}{tip}")
    if len(parts) != 2:
        return Result().add("error", f"usage: /set {key} VALUE (now {getattr(conv.bot.decoding, key)})")
    raw = parts[1]
    if key == "seed" and raw.lower() in ("none", "off"):
        value = None
    else:
        try:
            value = SETTINGS[key](raw)
        except ValueError:
            kind = "a whole number" if SETTINGS[key] is int else "a number"
            return Result().add("error", f"{key} must be {kind}, not {raw!r}")
    conv.configure(**{key: value})
    result = Result().add("info", f"{key} = {getattr(conv.bot.decoding, key)}")
    mode = ONLY_IN.get(key)
    if mode and conv.bot.decoding.mode != mode:
        result.add("hint", f"({key} is used in {mode} mode: /mode {mode})")
    return result


def cmd_mode(conv, arg):
    if not arg:
        return Result().add("info", f"mode = {conv.bot.decoding.mode} (choose from {', '.join(MODES)})")
    conv.configure(mode=arg.lower())
    return Result().add("info", f"mode = {conv.bot.decoding.mode}")


def cmd_save(conv, arg):
    if not arg:
        return Result().add("error", "usage: /save FILE.md or /save FILE.json")
    try:
        path = transcript.save(conv, arg)
    except OSError as exc:
        return Result().add("error", f"cannot save {arg}: {exc.strerror or exc}")
    messages = sum(entry["role"] != "note" for entry in conv.transcript)
    return Result().add("info", f"saved {messages} messages to {path}")


def cmd_model(conv, arg):
    if not arg:
        return Result().add("info", f"model {conv.bot.name} ({conv.bot.bundle.path}); /model DIR switches")
    try:
        bot = conv.switch_model(arg)
    except ChatbotError as exc:
        return Result().add("error", f"{exc} (still using {conv.bot.name})")
    return Result().add("info", f"switched to model {bot.name} ({bot.bundle.path})")


def _value(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


def _summary(mapping):
    return ", ".join(f"{k}={_value(v)}" for k, v in mapping.items() if v not in (None, {}, []))


def cmd_info(conv, arg):
    info = conv.bot.info()
    perplexity = info.get("val_perplexity")
    return (Result()
            .add("info", f"model: {conv.bot.name} ({info['model']})")
            .add("info", f"config: {_summary(info['config'])}")
            .add("info", f"vocabulary: {info['vocab_size']:,} tokens")
            .add("info", f"training: {_summary(info['training']) or 'no summary recorded'}")
            .add("info", f"validation perplexity: {perplexity if perplexity is not None else 'not recorded'}")
            .add("info", f"decoding: {_summary(info['decoding'])}"))


_HANDLERS = {"/help": cmd_help, "/quit": cmd_quit, "/exit": cmd_quit, "/reset": cmd_reset, "/retry": cmd_retry,
             "/nbest": cmd_nbest, "/set": cmd_set, "/mode": cmd_mode, "/save": cmd_save, "/model": cmd_model,
             "/info": cmd_info}
