"""`chatbot eval`: perplexity, BLEU, distinct-n and the generic-reply rate of a model on a corpus, decoding with
the same settings (options, $CHATBOT_* and the bundle's defaults) as `chatbot reply`."""

import json
import sys

from .errors import UsageError

FORMATS = ("auto", "dailydialog", "cornell", "chatterbot", "tsv", "jsonl", "text")


def add_parser(sub, common):
    p = sub.add_parser("eval", parents=[common], help="evaluate a model on a corpus",
                       description="Evaluate a model on the (context, reply) pairs of a corpus: perplexity of the "
                                   "reference replies, and BLEU-1/2, distinct-1/2 and the generic-reply rate of "
                                   "the replies it generates with the decoding options given.")
    p.add_argument("--data", metavar="PATH", required=True, help="corpus file or folder")
    p.add_argument("--format", default="auto", help=f"corpus format: {', '.join(FORMATS)} (default: auto)")
    p.add_argument("--limit", type=int, metavar="N", help="use the first N pairs only")
    p.add_argument("--samples", type=int, default=0, metavar="K",
                   help="show K example (input, reference, reply) triples (stderr, or 'samples' in the JSON)")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="pairs decoded together")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    return p


def run(args):
    from .cli import load_bot
    from .corpora import read_dialogues
    from .evaluate import evaluate, format_table, load_pairs

    if args.format.lower() not in FORMATS:
        raise UsageError(f"unknown corpus format '{args.format}' (supported: {', '.join(FORMATS)})")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, not {args.limit}")
    if args.samples < 0 or args.batch_size < 1:
        raise UsageError("--samples must be >= 0 and --batch-size >= 1")
    read_dialogues(args.data, args.format)  # a missing corpus or an unknown format is reported before loading
    bot = load_bot(args)
    pairs = load_pairs(args.data, args.format, bot.context_turns, bot.bundle.tokenizer, args.limit)
    result = evaluate(bot, pairs, batch_size=args.batch_size, samples=args.samples)
    result = {"model": str(bot.bundle.path), "data": args.data, **result}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(format_table(result))
    for sample in result.get("samples", []):
        print(f"\n> {' | '.join(sample['input'])}\n  reference: {sample['reference']}\n  reply:     "
              f"{sample['reply']}", file=sys.stderr)
    return 0
