"""The REPL, driven through prompt_toolkit's pipe input with exact transcripts, plus one real pseudo-terminal."""

import json
import os
import re
import shutil
import sys
import threading
import time
from io import StringIO

import pytest
from conftest import ROOT, SMALL_TALK, make_random_bundle
from prompt_toolkit.application import create_app_session
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from chatbot import commands, repl
from chatbot.bot import Chatbot, Conversation
from chatbot.toolbar import toolbar_text

UP, CTRL_C, CTRL_D = "\x1b[A", "\x03", "\x04"
# History loads in the background once a prompt is drawn; a person cannot press Up sooner than this.
SETTLE = 0.3
BANNER = "chatbot · model bot — type /help for commands, Ctrl-D to quit"


def paste(text):
    """Text as a terminal pastes it (bracketed paste): one event, not a key press per character."""
    return f"\x1b[200~{text}\x1b[201~"


def chat(bundle, *keys, home, overrides=None, env=None):
    """Type `keys` (strings, bytes sent raw, or a number: seconds to pause) into a REPL session; returns
    (exit code, printed lines)."""
    overrides = {"mode": "greedy"} if overrides is None else overrides
    bot = Chatbot.load(bundle, **overrides)
    out = StringIO()
    with create_pipe_input() as pipe:
        def feed():  # from a thread: a big paste would fill the pipe before the REPL starts reading
            for key in keys:
                if isinstance(key, (int, float)):
                    time.sleep(key)
                else:
                    pipe.send_bytes(key) if isinstance(key, bytes) else pipe.send_text(key)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        with create_app_session(input=pipe, output=DummyOutput()):
            code = repl.run(bot, overrides, stdout=out,
                            env={"CHATBOT_HOME": str(home), "NO_COLOR": "1", **(env or {})})
        feeder.join(5)
    return code, out.getvalue().splitlines()


def lines_of(*typed):
    return [line + "\r" for line in typed]


@pytest.fixture
def talk(trained_bundle, tmp_path):
    def run(*typed, **kw):
        return chat(trained_bundle, *lines_of(*typed), CTRL_D, home=tmp_path / "home", **kw)
    return run


def test_small_talk_transcript(talk):
    code, lines = talk("Hi, how are you?", "Goodbye")
    assert code == 0
    assert lines == [BANNER, "bot> I'm good, thanks. How about you?", "bot> See you later!"]


def test_every_learned_reply(talk):
    code, lines = talk(*SMALL_TALK)
    assert [line.lower() for line in lines[1:]] == [f"bot> {reply}".lower() for reply in SMALL_TALK.values()]


def test_quit_and_exit_end_the_session(trained_bundle, tmp_path):
    for command in ("/quit", "/exit"):
        code, lines = chat(trained_bundle, *lines_of(command, "Goodbye"), home=tmp_path)
        assert (code, lines) == (0, [BANNER])


def test_help_lists_every_command(talk):
    _, lines = talk("/help")
    for name in commands.COMMANDS:
        assert any(line.startswith(name + " ") for line in lines), name
    _, lines = talk("/help retry")
    assert lines[1] == "/retry " + commands.COMMANDS["/retry"]


def test_unknown_command_suggests_the_closest(talk):
    _, lines = talk("/rset", "/xyzzy", "/RETRY")
    assert lines[1:] == ["unknown command /rset — did you mean /reset?",
                         "unknown command /xyzzy — type /help for commands",
                         "nothing to retry yet: send a message first"]


def test_blank_lines_get_a_hint_and_punctuation_an_answer(talk):
    _, lines = talk("", "   \t ", "?!", "//hi")
    assert lines[1:3] == [commands.HINT, commands.HINT]
    assert lines[3].startswith("bot> ") and lines[4].startswith("bot> ")
    assert len(lines) == 5


def test_huge_paste_and_binary_input_are_answered(trained_bundle, tmp_path):
    code, lines = chat(trained_bundle, paste("word " * 20_000) + "\r", b"caf\xff\xfe \x00\x01ok\r", "Goodbye\r",
                       CTRL_D, home=tmp_path)
    assert code == 0 and len(lines) == 4
    assert all(line.startswith("bot> ") for line in lines[1:])
    assert lines[3] == "bot> See you later!"
    assert (tmp_path / "history").read_bytes().decode("utf-8")  # stored as valid UTF-8


def test_ctrl_c_clears_the_line_and_ctrl_d_quits(trained_bundle, tmp_path):
    code, lines = chat(trained_bundle, "Hi, how are", CTRL_C, "Goodbye\r", CTRL_C, CTRL_D, "Goodbye\r", home=tmp_path)
    assert code == 0
    assert lines == [BANNER, "bot> See you later!", "(Ctrl-D or /quit to leave)"]


def test_retry_shows_the_next_best_reply(talk):
    _, lines = talk("Hi, how are you?", "/retry", "/retry")
    assert lines[1] == "bot> I'm good, thanks. How about you?"
    assert len(set(lines[1:])) == 3 and all(line.startswith("bot> ") for line in lines[1:])


def test_retry_in_sample_mode_draws_a_new_sample(trained_bundle, tmp_path):
    overrides = {"mode": "sample", "temperature": 5.0, "seed": 1}
    _, lines = chat(trained_bundle, *lines_of("Hi", "/retry", "/retry", "/retry"), CTRL_D, home=tmp_path,
                    overrides=overrides)
    assert len(lines) == 5 and len(set(lines[1:])) > 1


def test_nbest_shows_scored_candidates(talk):
    _, lines = talk("/nbest 3", "Goodbye", "/nbest 3", "/nbest zero", "/nbest 0")
    assert lines[1] == "nothing to rank yet: send a message first"
    ranked = lines[3:6]
    pattern = re.compile(r"^(\d)\. (.+)  \(score (-?\d+\.\d{3}), (-?\d+\.\d{3})/token\)$")
    matches = [pattern.match(line) for line in ranked]
    assert all(matches), ranked
    assert [m.group(1) for m in matches] == ["1", "2", "3"]
    scores = [float(m.group(3)) for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert matches[0].group(2) == "See you later!"
    assert lines[6:] == [f"usage: /nbest N, with N a whole number from 1 to {commands.MAX_NBEST}"] * 2


def test_set_changes_settings_and_bad_values_keep_the_old_one(talk):
    _, lines = talk("/set temperature -1", "/set temperature 0.5", "/set top_k lots", "/set tempreature 1",
                    "/set seed none", "/set max_length 3", "/set min_length 9", "/set beam", "/set")
    assert lines[1:9] == [
        "temperature must be > 0, not -1.0",
        "temperature = 0.5",
        "(temperature is used in sample mode: /mode sample)",
        "top_k must be a whole number, not 'lots'",
        "unknown setting tempreature — did you mean temperature?",
        "seed = None",
        "max_length = 3",
        "min-length must be between 0 and max-length (3), not 9",
    ]
    assert lines[9] == "usage: /set beam VALUE (now 5)"
    assert "temperature 0.5" in lines[10] and "min_length 1" in lines[10] and "max_length 3" in lines[10]


def test_mode_switches_and_rejects_unknown_modes(talk):
    _, lines = talk("/mode sample", "/mode loud", "/mode")
    assert lines[1:] == ["mode = sample", "mode must be one of greedy, sample, beam, not 'loud'",
                         "mode = sample (choose from greedy, sample, beam)"]


def test_save_markdown_and_json(talk, tmp_path):
    md, js = tmp_path / "chat.md", tmp_path / "chat.json"
    _, lines = talk("Goodbye", "/reset", "Tell me a joke", f"/save {md}", f"/save {js}")
    assert lines[-2:] == [f"saved 4 messages to {md}", f"saved 4 messages to {js}"]
    assert md.read_text().splitlines()[4:] == [
        "**You:** Goodbye", "", "**Bot:** See you later!", "", "*(context reset)*", "",
        "**You:** Tell me a joke", "", "**Bot:** Why did the chicken cross the road?"]
    data = json.loads(js.read_text())
    assert data["model"] == "bot" and data["decoding"]["mode"] == "greedy"
    assert [(m["role"], m["text"]) for m in data["messages"]] == [
        ("user", "Goodbye"), ("bot", "See you later!"), ("note", "context reset"),
        ("user", "Tell me a joke"), ("bot", "Why did the chicken cross the road?")]
    assert {"score", "log_prob", "per_token", "mode"} <= set(data["messages"][1])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary files left


def test_save_failures_keep_the_session_going(talk, tmp_path):
    (tmp_path / "dir.md").mkdir()
    _, lines = talk("Goodbye", f"/save {tmp_path}/missing/chat.md", f"/save {tmp_path}/dir.md",
                    f"/save {tmp_path}/chat.txt", "/save", "Goodbye")
    assert lines[2] == f"cannot save {tmp_path}/missing/chat.md: No such file or directory"
    assert lines[3].startswith(f"cannot save {tmp_path}/dir.md: ")
    assert lines[4] == f"cannot save {tmp_path}/chat.txt: the name must end in .md (Markdown) or .json"
    assert lines[5:] == ["usage: /save FILE.md or /save FILE.json", "bot> See you later!"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.md", "home"]


def test_model_switch_and_broken_model(talk, tmp_path, random_bundle):
    broken = tmp_path / "broken"
    shutil.copytree(random_bundle, broken)
    (broken / "weights.npz").write_bytes(b"not a zip")
    _, lines = talk(f"/model {broken}", "Goodbye", f"/model {random_bundle}", "/model")
    assert lines[1].startswith(f"{broken / 'weights.npz'}: corrupt weights") and lines[1].endswith("(still using bot)")
    assert lines[2] == "bot> See you later!"
    assert lines[3] == f"switched to model bot ({random_bundle})"
    assert lines[4] == f"model bot ({random_bundle}); /model DIR switches"


def test_info_shows_the_model(talk, trained_bundle):
    _, lines = talk("/info")
    info = Chatbot.load(trained_bundle).info()
    assert lines[1] == f"model: bot ({trained_bundle})"
    assert lines[2].startswith("config: vocab_size=") and "context_turns=1" in lines[2]
    assert lines[3] == f"vocabulary: {info['vocab_size']:,} tokens"
    assert lines[4].startswith("training: ") and "pairs=20" in lines[4]
    assert lines[5].startswith("validation perplexity: ")
    assert lines[6].startswith("decoding: mode=greedy")


def test_history_persists_into_the_next_session(trained_bundle, tmp_path):
    chat(trained_bundle, "Goodbye\r", CTRL_D, home=tmp_path)
    assert "+Goodbye" in (tmp_path / "history").read_text().splitlines()
    _, lines = chat(trained_bundle, SETTLE, UP + "\r", CTRL_D, home=tmp_path)
    assert lines == [BANNER, "bot> See you later!"]


def test_unusable_history_file_warns_and_carries_on(trained_bundle, tmp_path):
    (tmp_path / "history").mkdir()  # a directory cannot be opened as a file, even by root
    _, lines = chat(trained_bundle, "Goodbye\r", SETTLE, UP + "\r", CTRL_D, home=tmp_path)
    assert lines[0] == BANNER
    assert re.fullmatch(r"warning: cannot use history file .*/history \(.+\); history is kept in memory only",
                        lines[1])
    assert lines[2:] == ["bot> See you later!"] * 2  # the in-memory history still works


def test_context_turns_are_passed_and_reset(tmp_path):
    bot = Chatbot.load(make_random_bundle(tmp_path / "ctx", context_turns=3))
    seen = []
    respond = bot.respond
    bot.respond = lambda text, history=(): seen.append(list(history)) or respond(text, history)
    conversation = Conversation(bot)
    first = commands.handle(conversation, "hello").lines[0][1]
    second = commands.handle(conversation, "how are you").lines[0][1]
    commands.handle(conversation, "and then")
    commands.handle(conversation, "/reset")
    commands.handle(conversation, "again")
    assert seen == [[], ["hello", first], ["how are you", second], []]


def test_completion_of_commands_and_arguments():
    completer = repl.SlashCompleter()

    def complete(text):
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]

    assert complete("/re") == ["/reset", "/retry"]
    assert complete("/mode s") == ["sample"]
    assert complete("/set t") == ["temperature", "top_k", "top_p"]
    assert complete("hello /re") == []
    assert complete(f"/model {ROOT}/test") == ["s"]


def test_toolbar_shows_model_and_settings(random_bundle):
    bot = Chatbot.load(random_bundle, mode="beam", beam=4)
    assert toolbar_text(bot) == " model bot │ mode beam  beam 4  length_penalty 1 │ max_length 12 "
    bot.configure(mode="sample", temperature=0.7, seed=3)
    assert "mode sample  temperature 0.7  top_k 0  top_p 1" in toolbar_text(bot) and "seed 3" in toolbar_text(bot)


def test_colour_and_history_location_follow_the_environment(tmp_path):
    assert repl.use_color({"TERM": "xterm"})
    assert not repl.use_color({"TERM": "xterm", "NO_COLOR": ""})
    assert not repl.use_color({"TERM": "dumb"})
    assert repl.history_path({"CHATBOT_HOME": str(tmp_path)}) == tmp_path / "history"
    assert repl.history_path({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "chatbot" / "history"
    assert str(repl.history_path({"XDG_DATA_HOME": "relative"})).endswith(".local/share/chatbot/history")


def test_output_is_plain_text_when_not_a_terminal():
    out = StringIO()
    repl.Screen(out, color=True).show("reply", "hi")
    assert out.getvalue() == "bot> hi\n"


def test_real_terminal_session(random_bundle, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "CHATBOT_HOME": str(tmp_path), "NO_COLOR": "1", "TERM": "dumb"}
    child = pexpect.spawn(sys.executable, ["-m", "chatbot", "chat", "--model", str(random_bundle)], env=env,
                          cwd=str(ROOT), encoding="utf-8", timeout=30, dimensions=(24, 100))
    try:
        child.expect_exact("type /help for commands, Ctrl-D to quit")
        child.expect_exact("you> ")
        child.send("hello there\r")
        child.expect(r"bot> [^\r\n]*\r\n")
        child.expect_exact("you> ")
        child.send("half a line")
        child.send(CTRL_C)
        child.expect_exact("you> ")  # still running
        child.send("/mode\r")
        child.expect_exact("mode = greedy")
        child.expect_exact("you> ")
        child.send(CTRL_D)
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert (tmp_path / "history").is_file()
