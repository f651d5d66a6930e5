#!/usr/bin/env python3
"""Compare decoding settings on one corpus, to choose a model's default decoding.

    python bin/evaluate_decoding.py --model DIR --data PATH [--format F] [--limit N]

Runs `chatbot eval`'s evaluation once per entry of SETTINGS (each on top of the bundle's own decoding, so
max-length, min-length, no-repeat-ngram and length-penalty stay the bundle's unless a setting names them) and
prints a Markdown table. The perplexity of the references does not depend on decoding and is printed once.
Needs only the runtime (NumPy), never TensorFlow.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from chatbot.bot import Chatbot  # noqa: E402
from chatbot.errors import ChatbotError  # noqa: E402
from chatbot.evaluate import evaluate, load_pairs, perplexity  # noqa: E402

# name -> decoding options. Every entry sets the mode-specific options so none leaks from the bundle's defaults.
_PLAIN = {"rerank": 0.0, "n_best": 1, "top_k": 0, "top_p": 1.0, "temperature": 1.0}
SETTINGS = {
    "greedy": {**_PLAIN, "mode": "greedy"},
    "beam 5": {**_PLAIN, "mode": "beam", "beam": 5},
    "beam 10": {**_PLAIN, "mode": "beam", "beam": 10},
    "beam 5 + rerank 0.5": {**_PLAIN, "mode": "beam", "beam": 5, "rerank": 0.5},
    "beam 10 + rerank 1.0": {**_PLAIN, "mode": "beam", "beam": 10, "rerank": 1.0},
    "sample top-p 0.9": {**_PLAIN, "mode": "sample", "top_p": 0.9, "seed": 0},
    "sample top-k 40": {**_PLAIN, "mode": "sample", "top_k": 40, "seed": 0},
    "sample top-k 40 (T 0.8)": {**_PLAIN, "mode": "sample", "top_k": 40, "temperature": 0.8, "seed": 0},
    "sample top-p 0.9 + rerank 0.5": {**_PLAIN, "mode": "sample", "top_p": 0.9, "rerank": 0.5, "seed": 0},
    "sample top-k 40 + rerank 1.0": {**_PLAIN, "mode": "sample", "top_k": 40, "rerank": 1.0, "seed": 0},
    "sample top-p 0.9 + rerank 1.0": {**_PLAIN, "mode": "sample", "top_p": 0.9, "rerank": 1.0, "seed": 0},
}
COLUMNS = (("BLEU-2", "bleu2", "{:.4f}"), ("distinct-1", "distinct1", "{:.4f}"),
           ("distinct-2", "distinct2", "{:.4f}"), ("generic rate", "generic_rate", "{:.2%}"),
           ("avg length", "avg_reply_tokens", "{:.2f}"), ("replies/s", "replies_per_second", "{:.1f}"))


def meets_goal(result, greedy):
    """Issue 4's bar for a default decoding: generic rate <= 0.10, distinct-2 >= 0.35, BLEU-2 >= greedy's."""
    return (result["generic_rate"] <= 0.10 and result["distinct2"] >= 0.35
            and (greedy is None or result["bleu2"] >= greedy["bleu2"]))


def markdown_table(rows):
    """rows: (setting name, evaluate() result) pairs."""
    greedy = dict(rows).get("greedy")
    lines = ["| setting | " + " | ".join(title for title, _, _ in COLUMNS) + " | goal |",
             "|---|" + "---:|" * len(COLUMNS) + ":---:|"]
    for name, result in rows:
        lines.append(f"| {name} | " + " | ".join(fmt.format(result[key]) for _, key, fmt in COLUMNS)
                     + f" | {'yes' if meets_goal(result, greedy) else 'no'} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", metavar="DIR", required=True)
    parser.add_argument("--data", metavar="PATH", required=True)
    parser.add_argument("--format", default="auto")
    parser.add_argument("--limit", type=int, metavar="N", help="use the first N pairs only")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--only", metavar="NAMES", help=f"comma-separated subset of: {', '.join(SETTINGS)}")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s): {', '.join(unknown)}")
    try:
        bot = Chatbot.load(args.model)
        base = bot.decoding.to_dict()
        pairs = load_pairs(args.data, args.format, bot.context_turns, bot.bundle.tokenizer, args.limit)
        ppl = perplexity(bot, pairs)
        print(f"model: {args.model}  data: {args.data}  pairs: {len(pairs):,}  "
              f"perplexity: {ppl['perplexity']:.3f}  (references cut: {ppl['truncated_references']:,})\n")
        rows = []
        for name in names:
            bot.configure(**{**base, **SETTINGS[name]})  # every field, so the random stream restarts too
            rows.append((name, evaluate(bot, pairs, args.batch_size, with_perplexity=False)))
            print(f"done: {name}", file=sys.stderr, flush=True)
        print(markdown_table(rows))
    except ChatbotError as exc:
        print(f"evaluate_decoding: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
