"""The Python API: Chatbot.load(...).reply / replies / nbest, and the Conversation the REPL is built on."""

import shutil

import pytest
from conftest import SMALL_TALK

from chatbot import Chatbot
from chatbot.bot import Conversation, Reply
from chatbot.errors import ModelError, UsageError


@pytest.fixture(scope="module")
def greedy_bot(trained_bundle):
    return Chatbot.load(trained_bundle, mode="greedy")


def test_reply_answers_the_learned_small_talk(greedy_bot):
    for context, reply in SMALL_TALK.items():
        assert greedy_bot.reply(context).lower() == reply.lower()


def test_replies_equal_one_by_one_replies(greedy_bot, random_bundle):
    texts = list(SMALL_TALK) + ["?!", "x" * 10_000, "what is a bicycle"]
    assert greedy_bot.replies(texts) == [greedy_bot.reply(t) for t in texts]
    random_bot = Chatbot.load(random_bundle)
    assert random_bot.replies(texts) == [random_bot.reply(t) for t in texts]


def test_same_seed_same_samples(trained_bundle):
    def samples(seed):
        bot = Chatbot.load(trained_bundle, mode="sample", temperature=3.0, seed=seed)
        return [bot.reply("Hi, how are you?") for _ in range(5)]

    assert samples(11) == samples(11)
    assert samples(11) != samples(12)


def test_configure_with_a_seed_restarts_the_stream(trained_bundle):
    bot = Chatbot.load(trained_bundle, mode="sample", temperature=3.0, seed=4)
    first = [bot.reply("Goodbye") for _ in range(4)]
    bot.configure(seed=4)
    assert [bot.reply("Goodbye") for _ in range(4)] == first


@pytest.mark.parametrize("mode", ["beam", "greedy", "sample"])
def test_nbest_returns_n_sorted_candidates(trained_bundle, mode):
    bot = Chatbot.load(trained_bundle, mode=mode, temperature=2.0, seed=0)
    candidates = bot.nbest("Tell me a joke", 4)
    assert all(isinstance(c, Reply) for c in candidates)
    assert 1 <= len(candidates) <= 4 if mode == "sample" else len(candidates) == 4
    scores = [c.score for c in candidates]
    assert scores == sorted(scores, reverse=True)
    assert len({tuple(c.tokens) for c in candidates}) == len(candidates)
    assert all(c.log_prob < 0 for c in candidates)
    if mode != "sample":
        assert candidates[0].reply == "Why did the chicken cross the road?"


def test_reply_details(greedy_bot):
    reply = greedy_bot.respond("Goodbye")
    assert reply.to_dict() == {"input": "Goodbye", "reply": "See you later!", "score": round(reply.score, 4),
                               "log_prob": round(reply.log_prob, 4), "tokens": ["see", "you", "later", "!"],
                               "mode": "greedy"}


def test_bad_input_and_bad_settings(random_bundle, tmp_path):
    bot = Chatbot.load(random_bundle)
    for text in ("", "   ", None):
        with pytest.raises(UsageError):
            bot.reply(text)
    with pytest.raises(UsageError, match="temperature"):
        Chatbot.load(random_bundle, temperature=0)
    with pytest.raises(UsageError, match="top-p"):
        bot.configure(top_p=2)
    assert bot.decoding.top_p == 1.0
    with pytest.raises(ModelError, match="not found"):
        Chatbot.load(tmp_path / "missing")


def test_load_reads_the_model_from_the_environment(random_bundle, monkeypatch):
    monkeypatch.setenv("CHATBOT_MODEL", str(random_bundle))
    assert Chatbot.load().bundle.path == random_bundle


def test_conversation_retry_nbest_reset_and_switch(trained_bundle, random_bundle, tmp_path):
    conversation = Conversation(Chatbot.load(trained_bundle, mode="greedy"), {"mode": "greedy"})
    with pytest.raises(UsageError, match="retry"):
        conversation.retry()
    assert conversation.say("Goodbye").reply == "See you later!"
    again = conversation.retry()
    assert again.reply != "See you later!" and conversation.turns == ["Goodbye", again.reply]
    assert len(conversation.candidates(3)) == 3
    conversation.reset()
    assert conversation.turns == [] and conversation.history() == []
    broken = tmp_path / "broken"
    shutil.copytree(random_bundle, broken)
    (broken / "vocab.json").unlink()
    with pytest.raises(ModelError, match="vocab.json"):
        conversation.switch_model(broken)
    assert conversation.bot.bundle.path == trained_bundle
    assert conversation.switch_model(random_bundle).decoding.mode == "greedy"
    assert [m["role"] for m in conversation.transcript] == ["user", "bot", "bot", "note", "note"]
