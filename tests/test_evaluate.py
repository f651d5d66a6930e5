"""`chatbot eval` and chatbot/evaluate.py: the pure metrics, perplexity against an independent computation,
the CLI on the trained fixture, and its errors."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from chatbot.bot import Chatbot
from chatbot.evaluate import bleu, distinct_n, evaluate, format_table, generic_rate, load_pairs, perplexity
from chatbot.tokenizer import END_ID, START_ID, UNK_ID
from conftest import PAIRS_FILE, ROOT, chatbot_cmd, make_random_bundle

PAIRS = str(PAIRS_FILE)


# ---- pure functions --------------------------------------------------------------------------------

def test_distinct_n_hand_computed():
    lists = [["a", "b", "a"], ["a", "b"], []]
    # unigrams: a b a a b -> 2 unique of 5; bigrams: ab ba ab -> 2 unique of 3
    assert distinct_n(lists, 1) == pytest.approx(2 / 5)
    assert distinct_n(lists, 2) == pytest.approx(2 / 3)
    assert distinct_n(lists, 3) == pytest.approx(1 / 1)
    assert distinct_n([["x"]], 2) == 0.0
    assert distinct_n([], 1) == 0.0


def test_generic_rate_known_distribution():
    # 18 replies: "ok" 5 times, "yes" 3 times, ten others once each. The top 10 are ok, yes and 8 singletons.
    lists = [["ok"]] * 5 + [["yes"]] * 3 + [[f"w{i}", "x"] for i in range(10)]
    assert generic_rate(lists, top=10) == pytest.approx(16 / 18)
    assert generic_rate(lists, top=1) == pytest.approx(5 / 18)
    assert generic_rate([["a"]] * 4, top=10) == 1.0
    assert generic_rate([]) == 0.0
    # Token sequences, not strings: ["a b"] and ["a", "b"] differ.
    assert generic_rate([["a", "b"], ["a b"]], top=1) == 0.5


def test_bleu_identical_and_disjoint():
    refs = [["the", "cat", "sat", "down"], ["hello", "there", "friend"]]
    assert bleu(refs, refs, 1) == pytest.approx(1.0)
    assert bleu(refs, refs, 2) == pytest.approx(1.0)
    # Lowercased before comparing.
    assert bleu(refs, [[t.upper() for t in r] for r in refs], 2) == pytest.approx(1.0)
    disjoint = [["a", "b", "c", "d"], ["e", "f", "g"]]
    assert bleu(refs, disjoint, 1) < 0.05
    assert bleu(refs, disjoint, 2) < 0.05
    assert bleu(refs, [[], []], 2) == 0.0
    assert 0.0 < bleu(refs, [["the", "cat", "sat", "up"], ["hello", "there", "friend"]], 2) < 1.0


# ---- the library ------------------------------------------------------------------------------------

def _reference_nll(bot, context, reply):
    """Summed -log p(reference + END | context) and its token count, straight from the engine's logits."""
    source = bot.encode(context[-1], context[:-1])
    limit = bot.bundle.model.max_target_len - 1
    target = [bot.bundle.vocab.index.get(t, UNK_ID) for t in bot.bundle.tokenizer.tokenize(reply)][:limit]
    logits = bot.engine.teacher_forced_logits([source], [[START_ID] + target])[0].astype(np.float64)
    log_probs = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
        - logits.max(1, keepdims=True)
    gold = target + [END_ID]
    return -sum(log_probs[t, i] for t, i in enumerate(gold)), len(gold)


def test_perplexity_is_word_level_per_token_with_end_and_unk(random_bundle, monkeypatch):
    bot = Chatbot.load(random_bundle)
    long_reply = " ".join(["pizza"] * 40)  # longer than max_target_len - 1 = 29: cut to it
    pairs = [(("Hi, how are you?",), "I'm good, thanks. How about you?"),
             (("Do you have any pets?",), "Yes, a zorblax called Pepper."),  # 'zorblax' is unknown
             (("What's your favourite food?",), long_reply)]
    assert "zorblax" not in bot.bundle.vocab
    nll, count = map(sum, zip(*(_reference_nll(bot, c, r) for c, r in pairs)))
    monkeypatch.setattr("chatbot.decoding.CHUNK_ROWS", 2)  # scored in two batches
    result = perplexity(bot, pairs)
    assert result["perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)
    assert result["reference_tokens"] == count == (9 + 1) + (7 + 1) + (29 + 1)  # words + END each
    assert result["truncated_references"] == 1
    assert result["reference_unknown_rate"] == pytest.approx(1 / 45)
    assert evaluate(bot, pairs)["perplexity"] == pytest.approx(result["perplexity"])


def test_evaluate_generates_like_respond_many(random_bundle):
    bot = Chatbot.load(random_bundle, mode="beam", beam=3)
    pairs = load_pairs(PAIRS, "tsv", tokenizer=bot.bundle.tokenizer)
    result = evaluate(bot, pairs, batch_size=7, samples=3)
    expected = [c[0].tokens for c in bot.respond_many([c[-1] for c, _ in pairs])]
    assert result["pairs"] == 20
    assert result["avg_reply_tokens"] == pytest.approx(sum(map(len, expected)) / 20)
    assert result["distinct2"] == pytest.approx(distinct_n(expected, 2))
    assert result["generic_rate"] == pytest.approx(generic_rate(expected))
    assert result["decoding"]["mode"] == "beam" and result["decoding"]["beam"] == 3
    assert len(result["samples"]) == 3 and set(result["samples"][0]) == {"input", "reference", "reply"}
    json.dumps(result)
    table = format_table(result).splitlines()
    assert any(line.startswith("BLEU-2") for line in table) and table[-1].startswith("decoding")


def test_load_pairs_uses_context_turns(tmp_path):
    corpus = tmp_path / "d.txt"
    corpus.write_text("one\ntwo\n...\nthree\n\nfour\nfive\n")
    tok = Chatbot.load(make_random_bundle(tmp_path / "bot", context_turns=2)).bundle.tokenizer
    pairs = load_pairs(corpus, "text", context_turns=2, tokenizer=tok)
    assert pairs[0] == (("one",), "two")
    assert pairs[2] == (("two", "..."), "three")
    assert pairs[-1] == (("four",), "five")
    assert load_pairs(corpus, "text", context_turns=2, tokenizer=tok, limit=2) == pairs[:2]


# ---- the CLI ----------------------------------------------------------------------------------------

def _eval(*args):
    result = chatbot_cmd("eval", *args)
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr, stderr
    return result, stderr


def test_cli_on_trained_model(trained_bundle):
    result, stderr = _eval("--model", str(trained_bundle), "--data", PAIRS, "--format", "tsv", "--json")
    assert result.returncode == 0, stderr
    figures = json.loads(result.stdout)
    assert figures["pairs"] == 20
    assert figures["perplexity"] < 1.5
    assert figures["bleu2"] > 0.8 and figures["bleu1"] > 0.8
    assert figures["truncated_references"] == 0
    assert figures["replies_per_second"] > 0 and figures["elapsed_seconds"] > 0


def test_cli_plain_table_and_limit(random_bundle):
    result, stderr = _eval("--model", str(random_bundle), "--data", PAIRS, "--limit", "5", "--samples", "2")
    assert result.returncode == 0, stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0].split() == ["pairs", "5"]
    assert lines[-1].startswith("decoding") and "mode greedy" in lines[-1]
    assert len({line.index(line.split()[-1]) for line in lines[1:4]}) <= 3  # values in a column
    assert stderr.count("reference:") == 2
    figures = json.loads(_eval("--model", str(random_bundle), "--data", PAIRS, "--limit", "3", "--json",
                               "--mode", "beam")[0].stdout)
    assert figures["pairs"] == 3 and figures["decoding"]["mode"] == "beam"


@pytest.mark.parametrize("args, code, message", [
    (["--format", "yaml-ish"], 2, "supported: auto, dailydialog"),
    (["--limit", "0"], 2, "--limit"),
    (["--data", "/no/such/corpus.tsv"], 2, "no such file"),
    (["--model", "/no/such/model"], 1, "model directory not found"),
])
def test_cli_errors(random_bundle, args, code, message):
    base = {"--model": str(random_bundle), "--data": PAIRS}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    result, stderr = _eval(*[x for pair in base.items() for x in pair])
    assert result.returncode == code, stderr
    assert message in stderr and stderr.startswith("chatbot: ")


def test_cli_empty_corpus(random_bundle, tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n")
    result, stderr = _eval("--model", str(random_bundle), "--data", str(empty), "--format", "tsv")
    assert result.returncode == 2
    assert "no (context, reply) pairs" in stderr


def test_decoding_script_runs_without_tensorflow(random_bundle):
    code = ("import runpy, sys; sys.argv = ['x', '--model', sys.argv[1], '--data', sys.argv[2], '--limit', '4', "
            "'--only', 'greedy,beam 5 + rerank 0.5,sample top-p 0.9']\n"
            "try:\n    runpy.run_path('bin/evaluate_decoding.py', run_name='__main__')\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            "assert 'tensorflow' not in sys.modules")
    result = subprocess.run([sys.executable, "-c", code, str(random_bundle), PAIRS], capture_output=True, cwd=ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "| setting | BLEU-2 | distinct-1 | distinct-2 | generic rate |" in out
    assert "| beam 5 + rerank 0.5 |" in out and out.count("\n| ") == 4
    assert out.count(" | yes |") + out.count(" | no |") == 3  # the goal column, one per setting
