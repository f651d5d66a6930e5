"""The bottom toolbar: which model is talking and how its replies are chosen, so a /set shows at once."""


def toolbar_text(bot):
    d = bot.decoding
    if d.mode == "sample":
        knobs = f"temperature {d.temperature:g}  top_k {d.top_k}  top_p {d.top_p:g}"
    elif d.mode == "beam":
        knobs = f"beam {d.beam}  length_penalty {d.length_penalty:g}"
    else:
        knobs = ""
    parts = [f"model {bot.name}", f"mode {d.mode}" + (f"  {knobs}" if knobs else ""), f"max_length {d.max_length}"]
    if d.rerank > 0:
        parts.append(f"rerank {d.rerank:g}")
    if d.seed is not None:
        parts.append(f"seed {d.seed}")
    if bot.context_turns > 1:
        parts.append(f"context {bot.context_turns} turns")
    return " " + " │ ".join(parts) + " "
