"""A terminal chatbot built on a sequence-to-sequence LSTM. The runtime here never imports TensorFlow."""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy, so `import chatbot` for the CLI's error paths stays cheap.
    if name == "Chatbot":
        from .bot import Chatbot

        return Chatbot
    raise AttributeError(name)


__all__ = ["Chatbot", "__version__"]
