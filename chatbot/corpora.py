"""Dialogue corpora in several formats, read as streams of dialogues (each a list of turn strings, in order).

Everything is read line by line, so a corpus larger than memory can be streamed. The exceptions are
Cornell's movie_lines.txt (conversations refer to its lines by id, so it is held as a dict) and
chatterbot YAML files (small; YAML cannot be parsed line by line).
"""

import gzip
import json
import re
from pathlib import Path

from .errors import ChatbotError, CorpusError, UsageError
# Re-exported so callers need only this module.
from .pairs import CorpusStats, make_pairs, prepare_pairs, require_pairs, unknown_rate  # noqa: F401

FORMATS = ("dailydialog", "cornell", "chatterbot", "tsv", "jsonl", "text")
FOLDER_FORMATS = ("dailydialog", "cornell", "chatterbot")

# DailyDialog text files; the act and emotion files beside them hold labels, not text.
_DAILY_NAME = re.compile(r"^dialogues_(?!act_|emotion_).*\.txt(\.gz)?$", re.IGNORECASE)
_CORNELL_SEP = "+++$+++"
# Cornell's last field looks like a Python list (['L194', 'L195']). It is matched, never evaluated.
_QUOTED_ID = r"""(?:'[^'\\]*'|"[^"\\]*")"""
_ID_LIST = re.compile(rf"\[\s*(?:{_QUOTED_ID}\s*(?:,\s*{_QUOTED_ID}\s*)*,?\s*)?\]")
_ID = re.compile(r"""'([^'\\]*)'|"([^"\\]*)\"""")
_YAML_SUFFIXES = (".yml", ".yaml")
_SUPPORTED = ", ".join(("auto",) + FORMATS)


def default_corpus_path():
    """The folder of chatterbot-corpus's English YAML files, the corpus used when none is given."""
    try:
        import chatterbot_corpus  # optional: only training needs it
    except ImportError:
        raise ChatbotError("the default corpus needs chatterbot-corpus: pip install 'chatbot[train]'") from None
    folder = Path(chatterbot_corpus.__file__).resolve().parent / "data" / "english"
    if not folder.is_dir():
        raise ChatbotError(f"chatterbot-corpus is installed but has no English data folder at {folder}")
    return str(folder)


def read_dialogues(path, fmt="auto", stats=None):
    """Dialogues from PATH. The format and path are checked at once; the files are read as the result is iterated."""
    stats = stats if stats is not None else CorpusStats()
    fmt = (fmt or "auto").lower()
    if fmt != "auto" and fmt not in FORMATS:
        raise UsageError(f"unknown corpus format '{fmt}' (supported: {_SUPPORTED})")
    path = Path(path)
    if not path.exists():
        raise CorpusError("no such file or folder", path)
    if fmt == "auto":
        fmt = detect_format(path)
    elif path.is_dir() and fmt not in FOLDER_FORMATS:
        raise UsageError(f"the {fmt} format reads one file, but {path} is a folder")
    stats.corpora.append(str(path))
    return _counted(_READERS[fmt](path, stats), stats)


def _counted(dialogues, stats):
    for dialogue in dialogues:
        stats.dialogues += 1
        stats.turns += len(dialogue)
        yield dialogue


def detect_format(path):
    """Guess a corpus format from file names, then from a sample of the content."""
    path = Path(path)
    if not path.exists():
        raise CorpusError("no such file or folder", path)
    if path.is_dir():
        names = [p.name for p in path.iterdir() if p.is_file()]
        if "movie_lines.txt" in names:
            return "cornell"
        if any(_DAILY_NAME.match(n) for n in names):
            return "dailydialog"
        if any(n.lower().endswith(_YAML_SUFFIXES) for n in names):
            return "chatterbot"
        raise UsageError(f"cannot tell the corpus format of folder {path}; give it explicitly "
                         f"(supported: {_SUPPORTED})")
    name = path.name.lower()
    if name in ("movie_lines.txt", "movie_conversations.txt"):
        return "cornell"
    if _DAILY_NAME.match(name):
        return "dailydialog"
    base = name[:-3] if name.endswith(".gz") else name
    for suffixes, fmt in ((_YAML_SUFFIXES, "chatterbot"), ((".jsonl",), "jsonl"), ((".tsv",), "tsv")):
        if base.endswith(suffixes):
            return fmt
    sample = [line for line in _sample(path) if line.strip()]
    if any("__eou__" in line for line in sample):
        return "dailydialog"
    if any("\t" in line for line in sample):
        return "tsv"
    if base.endswith(".txt"):
        return "text"
    if sample and all(line.lstrip().startswith("{") for line in sample):
        return "jsonl"
    raise UsageError(f"cannot tell the corpus format of {path}; give it explicitly (supported: {_SUPPORTED})")


def _sample(path, size=65536):
    """The first complete lines of a file, for sniffing only (nothing is counted)."""
    data = _read_bytes(path, size)
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[:-1] if len(data) == size and len(lines) > 1 else lines


# ---- reading bytes -------------------------------------------------------------------------------

def _open(path):
    return gzip.open(path, "rb") if str(path).lower().endswith(".gz") else open(path, "rb")


def _decode(data, encoding, stats):
    """Decode like errors="replace", but count the replaced bytes so the report can show them."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        pass
    parts = []
    while True:
        try:
            parts.append(data.decode(encoding))
            return "".join(parts)
        except UnicodeDecodeError as err:
            parts.append(data[:err.start].decode(encoding) + "\ufffd")
            stats.replaced_bytes += err.end - err.start
            data = data[err.end:]


def _lines(path, stats, encoding="utf-8"):
    """(line number, decoded line without its line ending) for each line of a plain or gzipped file."""
    # Splitting bytes at b"\n" is safe for UTF-8 and ISO-8859-1: the byte never occurs inside a character.
    stats.files.append(str(path))
    try:
        with _open(path) as f:
            for number, raw in enumerate(f, 1):
                text = _decode(raw.rstrip(b"\r\n"), encoding, stats)
                yield number, (text.lstrip("\ufeff") if number == 1 else text)
    except (OSError, EOFError) as err:  # also a truncated or corrupt .gz
        raise CorpusError(f"cannot read: {err}", path) from None


def _read_bytes(path, size=-1):
    try:
        with _open(path) as f:
            return f.read(size)
    except (OSError, EOFError) as err:
        raise CorpusError(f"cannot read: {err}", path) from None


def _split_at_gaps(turns):
    """A turn that could not be read (None) ends the dialogue there: pairing across it would invent an exchange."""
    piece = []
    for turn in turns:
        if turn is None:
            if piece:
                yield piece
            piece = []
        else:
            piece.append(turn)
    if piece:
        yield piece


# ---- the formats -----------------------------------------------------------------------------------

def _read_dailydialog(path, stats):
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _DAILY_NAME.match(p.name))
        # Read x.txt or x.txt.gz, not both.
        plain = {p.name.lower() for p in files}
        files = [p for p in files if not (p.name.lower().endswith(".gz") and p.name.lower()[:-3] in plain)]
        if not files:
            folders = sorted(p.name for p in path.iterdir() if p.is_dir())
            hint = f"; name one of its folders ({', '.join(folders)})" if folders else ""
            raise CorpusError(f"no dialogues_*.txt files in this folder{hint}", path)
    else:
        files = [path]
    for file in files:
        for _, line in _lines(file, stats):
            turns = [turn.strip() for turn in line.split("__eou__")]
            if turns[-1] == "":  # every utterance, the last included, is followed by __eou__
                turns.pop()
            if turns:
                yield turns


def _read_cornell(path, stats):
    folder = path if path.is_dir() else path.parent
    lines_file, conversations_file = folder / "movie_lines.txt", folder / "movie_conversations.txt"
    for file in (lines_file, conversations_file):
        if not file.is_file():
            raise CorpusError(f"a Cornell corpus folder needs movie_lines.txt and movie_conversations.txt; "
                              f"{file.name} is missing", folder)
    text = {}
    for number, line in _lines(lines_file, stats, "iso-8859-1"):
        if line.strip():
            fields = [field.strip() for field in line.split(_CORNELL_SEP, 4)]
            if len(fields) != 5:
                raise CorpusError(f"expected 5 fields separated by '{_CORNELL_SEP}'", lines_file, number)
            text[fields[0]] = fields[4]
    for number, line in _lines(conversations_file, stats, "iso-8859-1"):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(_CORNELL_SEP, 3)]
        if len(fields) != 4 or not _ID_LIST.fullmatch(fields[3]):
            raise CorpusError("expected 4 fields, the last a list of line ids like ['L1', 'L2']",
                              conversations_file, number)
        turns = []
        for single, double in _ID.findall(fields[3]):
            line_id = single or double
            if line_id in text:
                turns.append(text[line_id])
            else:
                stats.skip("missing_line_turn")
                turns.append(None)
        yield from _split_at_gaps(turns)


def _read_chatterbot(path, stats):
    import yaml  # only this format needs it

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(_YAML_SUFFIXES))
        if not files:
            raise CorpusError("no .yml files in this folder", path)
    else:
        files = [path]
    for file in files:
        stats.files.append(str(file))
        text = _decode(_read_bytes(file), "utf-8", stats).lstrip("\ufeff")
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            problem = getattr(err, "problem", None) or str(err)
            raise CorpusError(f"invalid YAML: {problem}", file, mark.line + 1 if mark else None) from None
        conversations = document.get("conversations") if isinstance(document, dict) else None
        if not isinstance(conversations, list):
            raise CorpusError("expected 'conversations:' holding a list of lists of strings", file)
        for conversation in conversations:
            if not isinstance(conversation, list):
                # The English trivia.yml has one entry that lost its "- " and became a single string.
                stats.skip("non_list_conversation")
                continue
            turns = []
            for turn in conversation:
                if isinstance(turn, str):
                    turns.append(turn.strip())
                elif isinstance(turn, (int, float)) and not isinstance(turn, bool):
                    turns.append(str(turn))
                else:
                    # Unquoted yes/no/on/off load as booleans, whose original spelling is lost.
                    stats.skip("non_text_turn")
                    turns.append(None)
            yield from _split_at_gaps(turns)


def _read_tsv(path, stats):
    for number, line in _lines(path, stats):
        if not line.strip():
            continue
        tabs = line.count("\t")
        if tabs != 1:
            raise CorpusError(f"expected context<TAB>reply (one tab), found {tabs} tabs", path, number)
        context, reply = line.split("\t")
        yield [context.strip(), reply.strip()]


def _jsonl_turns(item):
    """The turns of one JSON line, or None when it has neither accepted shape."""
    if not isinstance(item, dict):
        return None
    if "dialogue" in item:
        turns = item["dialogue"]
        return turns if isinstance(turns, list) and all(isinstance(t, str) for t in turns) else None
    # One context string only: a list would turn into a dialogue whose earlier turns also become pairs,
    # which is not what a context/reply record says. Multi-turn data uses "dialogue".
    context, reply = item.get("context"), item.get("reply")
    return [context, reply] if isinstance(context, str) and isinstance(reply, str) else None


def _read_jsonl(path, stats):
    for number, line in _lines(path, stats):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"invalid JSON: {err.msg} (column {err.colno})", path, number) from None
        turns = _jsonl_turns(item)
        if turns is None:
            raise CorpusError('expected {"context": "...", "reply": "..."} or {"dialogue": ["...", ...]}',
                              path, number)
        yield [turn.strip() for turn in turns]


def _read_text(path, stats):
    turns = []
    for _, line in _lines(path, stats):
        if line.strip():
            turns.append(line.strip())
        elif turns:
            yield turns
            turns = []
    if turns:
        yield turns


_READERS = {
    "dailydialog": _read_dailydialog,
    "cornell": _read_cornell,
    "chatterbot": _read_chatterbot,
    "tsv": _read_tsv,
    "jsonl": _read_jsonl,
    "text": _read_text,
}
