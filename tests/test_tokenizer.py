"""The tokenizer on casual chat text, detokenizing, and the vocabulary."""

import json

import pytest

from chatbot.errors import ModelError
from chatbot.tokenizer import END, END_ID, PAD, PAD_ID, SEP, SEP_ID, SPECIALS, START, START_ID, UNK, UNK_ID, \
    Tokenizer, Vocabulary

tok = Tokenizer()


@pytest.mark.parametrize("text, tokens", [
    ("I don't know.", ["i", "don't", "know", "."]),  # contractions stay one token
    ("Well... really?!", ["well", "...", "really", "?", "!"]),
    ("Great :) see you ;-)", ["great", ":)", "see", "you", ";-)"]),  # emoticons kept
    ("I <3 it :D", ["i", "<3", "it", ":D"]),
    ("see https://example.com/a?b=1 now", ["see", "https://example.com/a?b=1", "now"]),  # URLs whole
    ("It costs 3.50, about 1,000 items", ["it", "costs", "3.50", ",", "about", "1,000", "items"]),
    ("Un café, s’il vous plaît", ["un", "café", ",", "s'il", "vous", "plaît"]),  # non-ASCII letters
    ("HELLO There", ["hello", "there"]),  # lowercased
    ("ＨＥＬＬＯ ﬁne", ["hello", "fine"]),  # NFKC: full-width letters, ligatures
    ("right.But why", ["right", ".", "but", "why"]),  # a full stop with no space after it
    ("tab\there\x00x", ["tab", "here", "x"]),  # control characters are spaces
])
def test_casual_text(text, tokens):
    assert tok.tokenize(text) == tokens


@pytest.mark.parametrize("text, tokens", [
    ("it ’ s fine", ["it's", "fine"]),  # DailyDialog splits contractions with spaces
    ("let ' s go", ["let's", "go"]),
    ("I ’ m here and don ’ t care", ["i'm", "here", "and", "don't", "care"]),
    ("it’s", ["it's"]),  # curly apostrophes become straight ones
])
def test_dailydialog_contractions_rejoined(text, tokens):
    assert tok.tokenize(text) == tokens


def test_typed_and_corpus_text_give_the_same_tokens():
    assert tok.tokenize("It ’ s 5 o ' clock .") == tok.tokenize("It's 5 o'clock.")


def test_casing_can_be_kept():
    assert Tokenizer(lowercase=False).tokenize("Hello Bob") == ["Hello", "Bob"]
    config = Tokenizer(lowercase=False).get_config()
    assert Tokenizer.from_config(json.loads(json.dumps(config))).tokenize("Hi Bob") == ["Hi", "Bob"]


@pytest.mark.parametrize("tokens, text", [
    ("i don't know .", "I don't know."),
    ("hello , how are you ? i 'm fine", "Hello, how are you? I'm fine"),
    ("great :) see you", "Great :) see you"),
    ("is it 3.50 or 1,000 ?", "Is it 3.50 or 1,000?"),
])
def test_detokenize(tokens, text):
    assert tok.detokenize(tokens.split()) == text


@pytest.mark.parametrize("text", ["I don't know.", "Hello, how are you? I'm fine.", "Really? Yes!",
                                  "It costs 3.50, I think."])
def test_detokenize_round_trips(text):
    assert tok.detokenize(tok.tokenize(text)) == text


def test_reserved_ids():
    assert (PAD_ID, UNK_ID, START_ID, END_ID, SEP_ID) == (0, 1, 2, 3, 4)
    vocab = Vocabulary.build([["hi"]])
    assert vocab.tokens[:5] == [PAD, UNK, START, END, SEP] and list(SPECIALS) == vocab.tokens[:5]
    with pytest.raises(ModelError):
        Vocabulary(["hi", PAD, UNK, START, END, SEP])
    with pytest.raises(ModelError):
        Vocabulary(list(SPECIALS) + ["hi", "hi"])


def test_vocabulary_order_min_count_and_max_size():
    texts = [["b", "a", "c"], ["a", "b"], ["a"], ["d"]]
    vocab = Vocabulary.build(texts)
    assert vocab.tokens[5:] == ["a", "b", "c", "d"]  # most frequent first, ties alphabetical
    assert Vocabulary.build(texts, min_count=2).tokens[5:] == ["a", "b"]
    assert Vocabulary.build(texts, max_size=7).tokens[5:] == ["a", "b"]
    assert len(Vocabulary.build(texts, max_size=7)) == 7


def test_specials_in_the_data_are_not_doubled():
    assert Vocabulary.build([[PAD, "x", UNK]]).tokens == list(SPECIALS) + ["x"]


def test_encode_decode_and_unknown_words():
    vocab = Vocabulary.build([["hello", "there"]])
    ids = vocab.encode(["hello", "stranger", "there"])
    assert ids == [vocab.index["hello"], UNK_ID, vocab.index["there"]]
    assert "hello" in vocab and "stranger" not in vocab
    assert vocab.decode(ids + [END_ID, vocab.index["hello"]]) == ["hello", "there"]  # stops at END, no UNK
    assert vocab.decode([START_ID, PAD_ID, SEP_ID, 999]) == []


def test_json_round_trip(tmp_path):
    vocab = Vocabulary.build([["café", "hi", "309 789 1267"]])
    path = tmp_path / "vocab.json"
    path.write_text(vocab.to_json(), encoding="utf-8")
    loaded = Vocabulary.from_json(path.read_text(encoding="utf-8"))
    assert loaded.tokens == vocab.tokens and loaded.index == vocab.index
    for bad in ('{"tokens": [1, 2]}', '["a"]', '{"words": []}'):
        with pytest.raises(ModelError):
            Vocabulary.from_json(bad)


def test_grow_keeps_ids_and_adds_frequent_new_words():
    vocab = Vocabulary.build([["a", "b"], ["a"]])
    grown = vocab.grow({"b": 5, "new": 3, "rare": 1, "other": 2}, min_count=2)
    assert grown.tokens[:len(vocab)] == vocab.tokens
    assert grown.tokens[len(vocab):] == ["new", "other"]
    assert vocab.grow({"x": 1, "y": 1}, max_size=len(vocab) + 1).tokens[len(vocab):] == ["x"]
    assert vocab.grow({"a": 9}).tokens == vocab.tokens
