"""The `chatbot` command as a user runs it: stdout carries replies only, errors are one line on stderr, and
exit codes say what went wrong (1: model or runtime, 2: usage or bad input)."""

import json
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, SMALL_TALK, chatbot_cmd

from chatbot.bundle import default_model_path


def out_lines(result):
    return result.stdout.decode("utf-8").splitlines()


def assert_fails(result, code, *words):
    """One line on stderr, naming each of `words`; nothing on stdout; no traceback."""
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == code, err
    assert result.stdout == b""
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1 and err.startswith("chatbot: "), err
    for word in words:
        assert word in err, err


@pytest.fixture(scope="module")
def greedy(trained_bundle):
    def run(*args, **kw):
        return chatbot_cmd("reply", "--model", str(trained_bundle), "--mode", "greedy", *args, **kw)
    return run


# -- bad input ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, stdin", [(["", ], None), (["  \t "], None), ([], b""), ([], b"\n  \n\t\n")])
def test_empty_input_is_a_usage_error(random_bundle, args, stdin):
    result = chatbot_cmd("reply", "--model", str(random_bundle), *args, input=stdin)
    assert_fails(result, 2, "input")


@pytest.mark.parametrize("args, named", [
    (["--temperature", "0"], "temperature"),
    (["--temperature", "abc"], "--temperature"),
    (["--temperature", "nan"], "temperature"),
    (["--top-p", "1.5"], "top-p"),
    (["--top-k", "-1"], "top-k"),
    (["--beam", "0"], "beam"),
    (["--min-length", "20", "--max-length", "5"], "min-length"),
    (["--mode", "loud"], "--mode"),
    (["--n-best", "0"], "n-best"),
    (["--no-such-option"], "--no-such-option"),
])
def test_invalid_options_are_usage_errors(random_bundle, args, named):
    assert_fails(chatbot_cmd("reply", "--model", str(random_bundle), *args, "hi"), 2, named)


def test_missing_model_directory(tmp_path):
    assert_fails(chatbot_cmd("reply", "--model", str(tmp_path / "nowhere"), "hi"), 1, "nowhere", "not found")


def _corrupt_weights(path):
    (path / "weights.npz").write_bytes(b"PK\x03\x04 definitely not numpy")


def _unknown_version(path):
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "format_version": 99}))


@pytest.mark.parametrize("breaks, named", [
    (_corrupt_weights, "weights.npz"),
    (lambda p: (p / "vocab.json").unlink(), "vocab.json"),
    (lambda p: (p / "config.json").unlink(), "config.json"),
    (_unknown_version, "config.json"),
])
def test_broken_bundles_are_model_errors(random_bundle, tmp_path, breaks, named):
    broken = tmp_path / "broken"
    shutil.copytree(random_bundle, broken)
    breaks(broken)
    assert_fails(chatbot_cmd("reply", "--model", str(broken), "hi"), 1, str(broken / named))


def test_binary_garbage_on_stdin_is_answered(random_bundle):
    result = chatbot_cmd("reply", "--model", str(random_bundle), input=b"caf\xff\xfe\x00\x01\x1b[2J\x0cok\r\n")
    assert result.returncode == 0, result.stderr
    assert len(out_lines(result)) == 1 and result.stderr == b""


def test_huge_argument_is_answered(greedy):
    result = greedy("Goodbye " * 12_500)  # 100,000 characters
    assert result.returncode == 0 and len(out_lines(result)) == 1


# -- replies -------------------------------------------------------------------------------------------------

def test_one_reply_per_stdin_line(random_bundle):
    result = chatbot_cmd("reply", "--model", str(random_bundle), input=b"hi\nhow are you\n")
    assert result.returncode == 0 and len(out_lines(result)) == 2 and result.stderr == b""


def test_learned_replies_and_blank_lines_keep_their_place(greedy):
    contexts = list(SMALL_TALK)
    result = greedy(input=("\n".join(contexts[:10]) + "\n\n" + "\n".join(contexts[10:]) + "\n").encode())
    lines = out_lines(result)
    assert lines[10] == ""
    assert [line.lower() for line in lines[:10] + lines[11:]] == [r.lower() for r in SMALL_TALK.values()]
    assert greedy("Hi, how are you?").stdout == b"I'm good, thanks. How about you?\n"


def test_json_output(greedy):
    result = greedy("--json", input=b"Goodbye\n\nTell me a joke\n")
    records = [json.loads(line) for line in out_lines(result)]  # blank inputs give no record in JSON
    assert [r["input"] for r in records] == ["Goodbye", "Tell me a joke"]
    assert records[0] == {"input": "Goodbye", "reply": "See you later!", "score": records[0]["score"],
                          "log_prob": records[0]["log_prob"], "tokens": ["see", "you", "later", "!"],
                          "mode": "greedy"}
    assert records[0]["log_prob"] < 0 and isinstance(records[0]["score"], float)


def test_n_best_plain_and_json(greedy):
    lines = out_lines(greedy("--n-best", "3", input=b"Goodbye\nTell me a joke\n"))
    assert len(lines) == 7 and lines[3] == ""
    first = [line.split("\t") for line in lines[:3]]
    assert first[0][1] == "See you later!"
    assert [float(score) for score, _ in first] == sorted((float(s) for s, _ in first), reverse=True)
    records = [json.loads(line) for line in out_lines(greedy("--n-best", "2", "--json", "Goodbye"))]
    assert len(records) == 1 and records[0]["input"] == "Goodbye"
    assert [c["reply"] for c in records[0]["candidates"]][0] == "See you later!"
    assert set(records[0]["candidates"][0]) == {"reply", "score", "log_prob", "tokens"}


def test_file_to_jsonl(greedy, tmp_path):
    src, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    src.write_text("Goodbye\nTell me a joke\n")
    result = greedy("--file", str(src), "--out", str(out))
    assert result.returncode == 0 and result.stdout == b"" and result.stderr == b""
    assert [json.loads(line)["reply"] for line in out.read_text().splitlines()] == [
        "See you later!", "Why did the chicken cross the road?"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]


def test_file_and_out_errors(random_bundle, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("hello\n")
    model = ["reply", "--model", str(random_bundle)]
    assert_fails(chatbot_cmd(*model, "--file", str(tmp_path / "missing.txt")), 2, "missing.txt", "cannot read")
    assert_fails(chatbot_cmd(*model, "--file", str(src), "--out", str(tmp_path / "no" / "o.jsonl")), 2, "o.jsonl")
    assert_fails(chatbot_cmd(*model, "--file", str(src), "--out", str(tmp_path)), 2, "directory")
    assert_fails(chatbot_cmd(*model, "--file", str(src), "hello"), 2, "--file")
    result = chatbot_cmd("reply", "--model", str(tmp_path / "nowhere"), "--file", str(src),
                         "--out", str(tmp_path / "o.jsonl"))
    assert_fails(result, 1, "nowhere")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]  # no output, no temporary file


# -- the environment -----------------------------------------------------------------------------------------

def test_environment_defaults(trained_bundle):
    env = {"CHATBOT_MODEL": str(trained_bundle), "CHATBOT_MODE": "greedy", "CHATBOT_TEMPERATURE": "0.5"}
    record = json.loads(chatbot_cmd("reply", "--json", "Goodbye", env=env).stdout)
    assert (record["mode"], record["reply"]) == ("greedy", "See you later!")
    record = json.loads(chatbot_cmd("reply", "--json", "--mode", "sample", "Goodbye", env=env).stdout)
    assert record["mode"] == "sample"  # an option beats the environment


@pytest.mark.parametrize("variable, value", [("CHATBOT_MODE", "loud"), ("CHATBOT_TEMPERATURE", "abc"),
                                             ("CHATBOT_TEMPERATURE", "-1")])
def test_bad_environment_values_name_the_variable(random_bundle, variable, value):
    result = chatbot_cmd("reply", "--model", str(random_bundle), "hi", env={variable: value})
    assert_fails(result, 2, f"${variable}")


def test_bad_model_from_environment(tmp_path):
    assert_fails(chatbot_cmd("reply", "hi", env={"CHATBOT_MODEL": str(tmp_path / "gone")}), 1, "gone")


# -- entry points --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [[], ["chat"]])
def test_chat_without_a_terminal_replies_like_reply(greedy, trained_bundle, command):
    result = chatbot_cmd(*command, "--model", str(trained_bundle), "--mode", "greedy",
                         input=b"Goodbye\nTell me a joke\n")
    assert out_lines(result) == ["See you later!", "Why did the chicken cross the road?"]


def test_info_and_version(random_bundle):
    info = json.loads(chatbot_cmd("info", "--model", str(random_bundle)).stdout)
    assert info["vocab_size"] > 5 and info["config"]["cell"] == "lstm"
    assert chatbot_cmd("--version").stdout.decode().startswith("chatbot ")


def test_runtime_never_imports_tensorflow(random_bundle):
    code = ("import sys\n"
            "from chatbot import Chatbot\n"
            f"Chatbot.load({str(random_bundle)!r}).reply('hi')\n"
            "from chatbot.cli import main\n"
            f"main(['reply', '--model', {str(random_bundle)!r}, 'hi'])\n"
            "from chatbot import repl, commands\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr.decode()


def test_shipped_default_model():
    if not (default_model_path() / "weights.npz").exists():
        pytest.skip("the default model has not been trained yet")
    result = chatbot_cmd("reply", "hello")
    assert result.returncode == 0 and len(out_lines(result)) == 1
