"""Reading corpora and turning them into training pairs, as a user of the trainer would see it."""

import gzip
import importlib.util
import sys
from pathlib import Path

import pytest

from chatbot.corpora import (
    FORMATS, CorpusStats, default_corpus_path, detect_format, make_pairs, prepare_pairs, read_dialogues,
    require_pairs, unknown_rate,
)
from chatbot.errors import ChatbotError, CorpusError, UsageError
from chatbot.tokenizer import SEP, Tokenizer, Vocabulary

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "data" / "examples"
SHARED_DAILYDIALOG = [ROOT.parent / "shared" / "corpora" / "dailydialog", Path("/work/shared/corpora/dailydialog")]

FIXTURES = {
    "dailydialog": EXAMPLES / "dailydialog" / "dialogues_example.txt",
    "cornell": EXAMPLES / "cornell",
    "chatterbot": EXAMPLES / "chatterbot" / "small_talk.yml",
    "tsv": EXAMPLES / "small_talk.tsv",
    "jsonl": EXAMPLES / "small_talk.jsonl",
    "text": EXAMPLES / "small_talk.txt",
}


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer()


def read(path, fmt="auto"):
    return list(read_dialogues(path, fmt))


def pairs(path, **kwargs):
    return list(make_pairs(read_dialogues(path), **kwargs))


# ---- each example corpus ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_auto_detects_each_example_and_reads_it_like_the_named_format(fmt):
    assert detect_format(FIXTURES[fmt]) == fmt
    assert read(FIXTURES[fmt]) == read(FIXTURES[fmt], fmt)


def test_folders_are_detected():
    assert detect_format(EXAMPLES / "dailydialog") == "dailydialog"
    assert detect_format(EXAMPLES / "chatterbot") == "chatterbot"
    assert detect_format(EXAMPLES / "cornell" / "movie_lines.txt") == "cornell"
    assert read(EXAMPLES / "dailydialog") == read(FIXTURES["dailydialog"])


def test_dailydialog_example():
    dialogues = read(FIXTURES["dailydialog"])
    assert len(dialogues) == 6
    assert dialogues[1] == ["Excuse me , is this seat taken ?", "No , please sit down .",
                            "Thanks . It's so crowded today ."]
    assert pairs(FIXTURES["dailydialog"])[0] == (("Good morning , Anna . How are you today ?",),
                                                 "Pretty good , thanks . I just got back from a run .")
    assert len(pairs(FIXTURES["dailydialog"])) == 15


def test_cornell_example_follows_line_ids_and_decodes_latin1():
    dialogues = read(FIXTURES["cornell"])
    assert len(dialogues) == 4
    assert dialogues[0] == ["Hi there. Is this the line for coffee?", "Yes, it is. It moves pretty fast, though.",
                            "Good. I'd love a café au lait before work.",
                            "Same here. I can't start the day without one."]
    assert dialogues[3] == ["What time is it?", "Almost noon.", "Then let's get some lunch."]
    assert len(pairs(FIXTURES["cornell"])) == 9


def test_chatterbot_example_turns_numbers_into_text():
    dialogues = read(FIXTURES["chatterbot"])
    assert len(dialogues) == 6
    assert dialogues[0][:2] == ["Hello", "Hi! How are you?"]
    assert dialogues[3] == ["How old are you?", "2", "That is very young!"]
    assert dialogues[5] == ["What is the weather like?", "I cannot look outside, but I hope it is sunny."]


def test_tsv_example():
    assert pairs(FIXTURES["tsv"])[2] == (("Do you have any pets?",), "Yes, a cat called Pepper.")
    assert len(pairs(FIXTURES["tsv"])) == 6


def test_jsonl_example_accepts_pairs_and_dialogues():
    dialogues = read(FIXTURES["jsonl"])
    assert dialogues[0] == ["Hello! Nice weather today.", "Yes, it's finally warm again."]
    assert dialogues[3] == ["Can I ask you something?", "Sure, go ahead.", "What time does the shop close?",
                            "At six o'clock."]
    assert len(pairs(FIXTURES["jsonl"])) == 11


def test_text_example_splits_dialogues_at_blank_lines():
    dialogues = read(FIXTURES["text"])
    assert [len(d) for d in dialogues] == [3, 4, 2, 4, 2]
    assert dialogues[2] == ["Happy birthday!", "Thank you so much!"]


# ---- DailyDialog files -----------------------------------------------------------------------------

def test_gzipped_dailydialog_and_folder_rules(tmp_path):
    line = "Hi . __eou__ Hello there . __eou__ How are you ? __eou__\n"
    with gzip.open(tmp_path / "dialogues_train.txt.gz", "wt", encoding="utf-8") as f:
        f.write(line)
    (tmp_path / "dialogues_act_train.txt").write_text("1 2 2 \n")
    (tmp_path / "dialogues_emotion_train.txt").write_text("0 0 0 \n")
    assert detect_format(tmp_path / "dialogues_train.txt.gz") == "dailydialog"
    assert read(tmp_path / "dialogues_train.txt.gz") == [["Hi .", "Hello there .", "How are you ?"]]
    stats = CorpusStats()
    assert list(read_dialogues(tmp_path, stats=stats)) == [["Hi .", "Hello there .", "How are you ?"]]
    assert stats.files == [str(tmp_path / "dialogues_train.txt.gz")]  # label files are not read


def test_dailydialog_root_folder_names_its_splits(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "validation").mkdir()
    with pytest.raises(CorpusError, match="train, validation"):
        list(read_dialogues(tmp_path, "dailydialog"))


# ---- pairs -----------------------------------------------------------------------------------------

def test_two_context_turns_are_joined_with_the_separator(tokenizer):
    dialogues = [["Hello", "Hi there", "How are you?"]]
    assert list(make_pairs(dialogues, context_turns=2))[1] == (("Hello", "Hi there"), "How are you?")
    prepared = list(prepare_pairs(dialogues, tokenizer, context_turns=2))
    assert prepared == [(["hello"], ["hi", "there"]),
                        (["hello", SEP, "hi", "there"], ["how", "are", "you", "?"])]


def test_long_context_keeps_its_most_recent_tokens(tokenizer):
    stats = CorpusStats()
    dialogues = [["one two three four five", "six seven", "ok"]]
    prepared = list(prepare_pairs(dialogues, tokenizer, context_turns=2, max_source_len=4, stats=stats))
    assert prepared[1] == (["five", SEP, "six", "seven"], ["ok"])
    assert prepared[0] == (["two", "three", "four", "five"], ["six", "seven"])
    assert stats.truncated_sources == 2 and stats.pairs_kept == 2


def test_duplicates_long_replies_and_empty_turns_are_dropped_and_reported(tokenizer):
    dialogues = [["Hi", "Hello"], ["hi", "hello"], ["Hi", "a b c d e"], ["Hi", "  "], ["Bye", "See you"]]
    stats = CorpusStats()
    kept = list(prepare_pairs(dialogues, tokenizer, max_target_len=5, stats=stats))
    assert kept == [(["hi"], ["hello"]), (["bye"], ["see", "you"])]
    assert stats.pairs_read == 5 and stats.pairs_kept == 2
    assert stats.dropped == {"duplicate": 1, "reply_too_long": 1, "empty": 1}
    vocab = Vocabulary.build(s + t for s, t in kept)
    report = "\n".join(stats.report_lines(vocab, unk_rate=0.125))
    assert "pairs read: 5" in report and "pairs kept: 2 (40.0%)" in report
    assert "empty 1, reply_too_long 1, duplicate 1" in report
    assert f"vocabulary size: {len(vocab)}" in report and "unknown-token rate: 12.50%" in report
    assert stats.to_dict()["dropped"] == stats.dropped


def test_dedupe_can_be_turned_off(tokenizer):
    assert len(list(prepare_pairs([["Hi", "Hello"], ["Hi", "Hello"]], tokenizer, dedupe=False))) == 2


def test_require_pairs_explains_an_empty_corpus(tmp_path, tokenizer):
    path = tmp_path / "empty.tsv"
    path.write_text("hi\t\n")
    stats = CorpusStats()
    list(prepare_pairs(read_dialogues(path, stats=stats), tokenizer, stats=stats))
    with pytest.raises(CorpusError, match=r"no usable pairs in .*empty\.tsv \(read 1, dropped: empty 1\)"):
        require_pairs(stats)


def test_unknown_rate():
    vocab = Vocabulary.build([["hello", "there"]])
    assert unknown_rate([["hello", "you"], ["there", "friend"]], vocab) == 0.5
    assert unknown_rate([], vocab) == 0.0


# ---- bad input -------------------------------------------------------------------------------------

def test_malformed_tsv_line_names_the_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("hi\thello\n\nno tab here\n")
    with pytest.raises(CorpusError, match=r"pairs\.tsv:3: .*one tab"):
        read(path)


@pytest.mark.parametrize("bad_line", ['{"context": "hi"', '{"context": "hi", "reply": 3}', '["hi", "hello"]'])
def test_malformed_jsonl_line_names_the_line(tmp_path, bad_line):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"context": "hi", "reply": "hello"}\n' + bad_line + "\n")
    with pytest.raises(CorpusError, match=r"pairs\.jsonl:2: "):
        read(path)


def test_unknown_format_lists_the_supported_ones():
    with pytest.raises(UsageError, match=r"unknown corpus format 'csv' \(supported: auto, dailydialog, cornell, "
                                         r"chatterbot, tsv, jsonl, text\)"):
        read_dialogues(FIXTURES["tsv"], "csv")


def test_missing_file_and_undetectable_format(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        read_dialogues(tmp_path / "nope.txt")
    (tmp_path / "notes.md").write_text("just some words\n")
    with pytest.raises(UsageError, match="supported: auto, dailydialog"):
        detect_format(tmp_path / "notes.md")


def test_invalid_utf8_is_replaced_and_counted(tmp_path, tokenizer):
    path = tmp_path / "chat.txt"
    path.write_bytes(b"caf\xc3\xa9 ok\nbad \xff\xfe byte\n")
    stats = CorpusStats()
    assert list(read_dialogues(path, stats=stats)) == [["café ok", "bad \ufffd\ufffd byte"]]
    assert stats.replaced_bytes == 2
    assert "undecodable bytes replaced: 2" in stats.report_lines()


def _cornell(folder, conversation_ids):
    folder.mkdir()
    (folder / "movie_lines.txt").write_bytes(
        b"L2 +++$+++ u1 +++$+++ m0 +++$+++ B +++$+++ Hello.\n"
        b"L1 +++$+++ u0 +++$+++ m0 +++$+++ A +++$+++ Hi.\n"
        b"L4 +++$+++ u1 +++$+++ m0 +++$+++ B +++$+++ Fine.\n"
        b"L3 +++$+++ u0 +++$+++ m0 +++$+++ A +++$+++ How are you?\n")
    (folder / "movie_conversations.txt").write_text(f"u0 +++$+++ u1 +++$+++ m0 +++$+++ {conversation_ids}\n")
    return folder


def test_cornell_line_ids_are_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    folder = _cornell(tmp_path / "cornell", f"['L1', __import__('os').system('touch {marker}')]")
    with pytest.raises(CorpusError, match=r"movie_conversations\.txt:1: "):
        read(folder)
    assert not marker.exists()


def test_cornell_missing_line_id_is_skipped_and_splits_the_dialogue(tmp_path):
    stats = CorpusStats()
    folder = _cornell(tmp_path / "cornell", "['L1', 'L2', 'L9', 'L3', 'L4']")
    assert list(read_dialogues(folder, stats=stats)) == [["Hi.", "Hello."], ["How are you?", "Fine."]]
    assert stats.skipped == {"missing_line_turn": 1}


def test_chatterbot_non_text_entries_are_skipped(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("conversations:\n- - Are you there?\n  - yes\n  - Good.\n- just a string\n- - 3.5\n  - Pi-ish\n")
    stats = CorpusStats()
    assert list(read_dialogues(path, stats=stats)) == [["Are you there?"], ["Good."], ["3.5", "Pi-ish"]]
    assert stats.skipped == {"non_text_turn": 1, "non_list_conversation": 1}


def test_default_corpus_needs_the_train_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "chatterbot_corpus", None)
    with pytest.raises(ChatbotError, match=r"pip install 'chatbot\[train\]'"):
        default_corpus_path()


# ---- real corpora ----------------------------------------------------------------------------------

@pytest.mark.skipif(not any(p.is_dir() for p in SHARED_DAILYDIALOG), reason="shared DailyDialog corpus absent")
def test_real_dailydialog_validation_split(tokenizer):
    folder = next(p for p in SHARED_DAILYDIALOG if p.is_dir())
    stats = CorpusStats()
    kept = list(prepare_pairs(read_dialogues(folder / "validation", stats=stats), tokenizer, stats=stats))
    assert stats.dialogues == 1000 and stats.turns == 8069
    assert stats.pairs_read == 7069 and stats.pairs_kept == len(kept) > 6000
    assert stats.replaced_bytes == 0


@pytest.mark.skipif(importlib.util.find_spec("chatterbot_corpus") is None, reason="chatterbot-corpus not installed")
def test_default_chatterbot_corpus(tokenizer):
    stats = CorpusStats()
    kept = list(prepare_pairs(read_dialogues(default_corpus_path(), stats=stats), tokenizer, stats=stats))
    assert len(stats.files) == 21
    assert stats.pairs_read > 2000
    # tech_support.yml repeats a handful of exchanges about a thousand times.
    assert stats.dropped["duplicate"] > 1000 and len(kept) > 1000
