"""Saving a conversation as Markdown or JSON, chosen by the file's extension. Files are written atomically:
a temporary file beside the target, then a rename, so a failed save never leaves half a transcript."""

import json
import os
import tempfile
from pathlib import Path

from .errors import UsageError

FORMATS = (".md", ".json")


def to_markdown(conversation):
    bot = conversation.bot
    lines = [f"# Chat with {bot.name}", "", f"Model: `{bot.bundle.path}`", ""]
    for entry in conversation.transcript:
        if entry["role"] == "user":
            lines += [f"**You:** {entry['text']}", ""]
        elif entry["role"] == "bot":
            label = "Bot (retry)" if entry.get("retry") else "Bot"
            lines += [f"**{label}:** {entry['text']}", ""]
        else:
            lines += [f"*({entry['text']})*", ""]
    return "\n".join(lines)


def to_json(conversation):
    bot = conversation.bot
    data = {"model": bot.name, "path": str(bot.bundle.path), "decoding": bot.decoding.to_dict(),
            "messages": conversation.transcript}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def new_file_mode():
    """The mode an ordinary new file gets (mkstemp makes its files private, which an output file should not be)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path, text):
    """Write text to path through a temporary file in the same directory; OSError on failure."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save(conversation, path):
    """Save the transcript; UsageError for an unknown extension, OSError if it cannot be written."""
    path = Path(os.path.expanduser(path))
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(f"cannot save {path}: the name must end in .md (Markdown) or .json")
    write_atomic(path, to_markdown(conversation) if suffix == ".md" else to_json(conversation))
    return path
