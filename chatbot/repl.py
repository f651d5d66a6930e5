"""The interactive chat: a prompt_toolkit session (line editing, history, suggestions, completion, a toolbar)
around commands.handle, which does the work."""

import os
import sys
from pathlib import Path

from prompt_toolkit import PromptSession, print_formatted_text
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.output import ColorDepth
from prompt_toolkit.styles import Style

from . import commands
from .bot import Conversation, clean_text
from .keys import key_bindings
from .toolbar import toolbar_text

PROMPT = "you> "
REPLY_PREFIX = "bot> "
STYLE = Style.from_dict({"prompt": "bold ansigreen", "reply-prefix": "bold ansicyan", "error": "ansired",
                         "hint": "ansibrightblack", "info": ""})


def history_path(env=None):
    env = os.environ if env is None else env
    if env.get("CHATBOT_HOME"):
        return Path(env["CHATBOT_HOME"]).expanduser() / "history"
    data = env.get("XDG_DATA_HOME")
    if not data or not os.path.isabs(data):  # the XDG spec says relative paths are to be ignored
        data = os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "chatbot" / "history"


class _History(FileHistory):
    """A FileHistory that survives the file going bad mid-session: the error is kept for the REPL to report,
    and the session goes on with what it has in memory."""

    def __init__(self, filename):
        super().__init__(filename)
        self.error = None  # set once; the REPL reports it and takes it
        self.broken = False  # after a failure, stop touching the file rather than fail on every line

    def _fail(self, exc):
        self.error, self.broken = exc, True

    def load_history_strings(self):
        try:
            return list(super().load_history_strings())
        except OSError as exc:
            self._fail(exc)
            return []

    def store_string(self, string):
        if self.broken:
            return
        try:
            super().store_string(clean_text(string))
        except OSError as exc:
            self._fail(exc)


def _history_warning(path, exc):
    return f"warning: cannot use history file {path} ({exc.strerror or exc}); history is kept in memory only"


def open_history(path):
    """(history, warning): the file history, or an in-memory one and a warning when the file cannot be used."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))  # private: it holds what you typed
        with open(path, "rb"):
            pass
    except OSError as exc:
        return InMemoryHistory(), _history_warning(path, exc)
    return _History(path), None


class SlashCompleter(Completer):
    """Completes command names, then /mode values, /set keys and the paths for /save and /model."""

    def __init__(self):
        self._paths = PathCompleter(expanduser=True)

    def get_completions(self, document, complete_event):
        text = document.text_before_cursor
        if not text.startswith("/") or "\n" in text:
            return
        name, space, arg = text.partition(" ")
        if not space:
            for command, about in commands.COMMANDS.items():
                if command.startswith(name.lower()):
                    yield Completion(command, -len(name), display_meta=about)
            return
        if name in ("/save", "/model"):
            yield from self._paths.get_completions(Document(arg, len(arg)), complete_event)
            return
        if " " not in arg:
            for choice in commands.argument_choices(name):
                if choice.startswith(arg.lower()):
                    yield Completion(choice, -len(arg))


def use_color(env=None):
    env = os.environ if env is None else env
    return "NO_COLOR" not in env and env.get("TERM") != "dumb"


class Screen:
    """Where replies and messages go: styled through prompt_toolkit, or plain text when colour is off."""

    def __init__(self, stream, color):
        isatty = getattr(stream, "isatty", lambda: False)
        self.stream, self.color = stream, color and isatty()  # styles mean nothing in a file (or a test)

    def show(self, kind, text):
        if kind == "reply":
            fragments = [("class:reply-prefix", REPLY_PREFIX), ("class:reply", text)]
        else:
            fragments = [(f"class:{kind}", text)]
        if self.color:
            print_formatted_text(FormattedText(fragments), file=self.stream, style=STYLE,
                                 include_default_pygments_style=False)
        else:
            self.stream.write("".join(t for _, t in fragments) + "\n")
        self.stream.flush()


def make_session(conversation, history, color, input=None, output=None):
    return PromptSession(
        message=[("class:prompt", PROMPT)], history=history, auto_suggest=AutoSuggestFromHistory(),
        completer=SlashCompleter(), complete_while_typing=True, bottom_toolbar=lambda: toolbar_text(conversation.bot),
        key_bindings=key_bindings(), style=STYLE, include_default_pygments_style=False,
        color_depth=None if color else ColorDepth.DEPTH_1_BIT, input=input, output=output)


def banner(bot):
    return f"chatbot · model {bot.name} — type /help for commands, Ctrl-D to quit"


def run(bot, overrides=None, *, stdout=None, input=None, output=None, env=None):
    """Chat until /quit or Ctrl-D; returns the exit code. `input`/`output` default to the terminal."""
    env = os.environ if env is None else env
    conversation = Conversation(bot, overrides)
    color = use_color(env)
    screen = Screen(stdout or sys.stdout, color)
    path = history_path(env)
    history, warning = open_history(path)
    session = make_session(conversation, history, color, input, output)
    screen.show("info", banner(bot))
    if warning:
        screen.show("error", warning)
    while True:
        try:
            line = session.prompt()
        except KeyboardInterrupt:
            screen.show("hint", "(Ctrl-D or /quit to leave)")
            continue
        except EOFError:
            return 0
        if getattr(history, "error", None) is not None:
            screen.show("error", _history_warning(path, history.error))
            history.error = None
        try:
            result = commands.handle(conversation, line)
        except KeyboardInterrupt:
            screen.show("hint", "(cancelled)")
            continue
        except MemoryError:
            screen.show("error", "out of memory")
            continue
        except Exception as exc:  # a bug in one reply should not cost the user the whole conversation
            screen.show("error", f"internal error: {type(exc).__name__}: {exc}")
            continue
        for kind, text in result.lines:
            screen.show(kind, text)
        if result.quit:
            return 0
