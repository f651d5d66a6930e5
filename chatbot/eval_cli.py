"""`chatbot eval`: placeholder until evaluate.py lands."""

from .errors import ChatbotError


def add_parser(sub, common):
    p = sub.add_parser("eval", parents=[common], help="evaluate a model on a corpus")
    p.add_argument("--data", required=True)
    return p


def run(args):
    raise ChatbotError("eval is not implemented yet")
