"""The errors a user can see. Only the CLI turns them into a line on stderr and an exit code."""


class ChatbotError(Exception):
    """A runtime or model problem: exit code 1."""

    exit_code = 1


class ModelError(ChatbotError):
    """A missing, broken or incompatible model bundle."""


class UsageError(ChatbotError):
    """Bad options or bad input from the user: exit code 2."""

    exit_code = 2


class CorpusError(UsageError):
    """A training or evaluation corpus that cannot be read; names the file and, where known, the line."""

    def __init__(self, message, path=None, line=None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line
