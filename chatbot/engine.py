"""The encoder-decoder in NumPy, float32 throughout: the same equations as training/model.py's Keras layers.

Weights are named for what they are (see `weight_shapes`); training/export.py writes exactly these arrays.
"""

import dataclasses

import numpy as np

from .errors import ModelError
from .tokenizer import PAD_ID

GATES = {"lstm": 4, "gru": 3}


def weight_shapes(config):
    """Name -> shape of every array the engine reads. The bundle loader checks a weights file against it."""
    V, E, U, D = config.vocab_size, config.embedding_dim, config.encoder_units, config.decoder_units
    G = GATES[config.cell]

    def cell(prefix, inputs, units):
        bias = (2, G * units) if config.cell == "gru" else (G * units,)
        return {f"{prefix}/kernel": (inputs, G * units), f"{prefix}/recurrent_kernel": (units, G * units),
                f"{prefix}/bias": bias}

    shapes = {"embedding": (V, E)}
    for i in range(config.layers):
        for direction in ("forward", "backward"):
            shapes.update(cell(f"encoder/layer{i}/{direction}", E if i == 0 else 2 * U, U))
    for i in range(config.layers):
        shapes.update(cell(f"decoder/layer{i}", E if i == 0 else D, D))
    shapes.update({"attention/kernel": (D, D), "attention/combine_kernel": (2 * D, D), "output/bias": (V,)})
    if config.tie_embeddings:  # logits = (attended @ projection) @ embedding.T + bias
        shapes["output/projection"] = (D, E)
    else:
        shapes["output/kernel"] = (D, V)
    return shapes


def _sigmoid(x):
    # tanh form: one ufunc, no overflow warnings for large negative inputs.
    return 0.5 * np.tanh(0.5 * x) + 0.5


class _Cell:
    """One recurrent layer's step, given its input already multiplied by the input kernel."""

    def __init__(self, kind, kernel, recurrent_kernel, bias):
        self.kind, self.units = kind, recurrent_kernel.shape[0]
        if kind == "gru":  # Keras' reset_after GRU keeps separate input and recurrent biases
            self.input_bias, self.recurrent_bias = bias[0], bias[1]
        else:
            # sigmoid(z) = 0.5 * tanh(z / 2) + 0.5. Halving the input, forget and output gates' columns once
            # (exact: a power of two) lets a single tanh serve all four gates at every step.
            u = self.units
            scale = np.full(4 * u, 0.5, np.float32)
            scale[2 * u:3 * u] = 1.0
            kernel, recurrent_kernel, bias = kernel * scale, recurrent_kernel * scale, bias * scale
            self.input_bias, self.recurrent_bias = bias, None
        self.kernel, self.recurrent = kernel, recurrent_kernel

    def project(self, x):
        return x @ self.kernel + self.input_bias

    def step(self, xw, h, c):
        u = self.units
        if self.kind == "lstm":
            z = h @ self.recurrent
            z += xw
            np.tanh(z, out=z)
            gates = z * np.float32(0.5)
            gates += np.float32(0.5)  # sigmoid of the input, forget and output gates; z[:, 2u:3u] is tanh(g)
            c = gates[:, u:2 * u] * c
            c += gates[:, :u] * z[:, 2 * u:3 * u]
            h = np.tanh(c)
            h *= gates[:, 3 * u:]
            return h, c
        hr = h @ self.recurrent + self.recurrent_bias
        z = _sigmoid(xw[:, :u] + hr[:, :u])
        r = _sigmoid(xw[:, u:2 * u] + hr[:, u:2 * u])
        hh = np.tanh(xw[:, 2 * u:] + r * hr[:, 2 * u:])
        return z * h + (1 - z) * hh, c


@dataclasses.dataclass
class Encoded:
    """What the decoder attends over, for a batch of inputs. `select` reorders it for beams."""

    values: np.ndarray  # (B, T, D) encoder outputs
    keys: np.ndarray  # (B, T, D) values @ attention kernel, computed once per reply
    mask_bias: np.ndarray  # (B, T) 0 for real tokens, -1e9 for padding
    state: np.ndarray  # (layers, 2, B, D) decoder start state: h and c per layer

    def select(self, index):
        return Encoded(self.values[index], self.keys[index], self.mask_bias[index], self.state[:, :, index])


class Engine:
    def __init__(self, config, weights):
        expected = weight_shapes(config)
        for name, shape in expected.items():
            if name not in weights:
                raise ModelError(f"weights.npz: missing array {name!r}")
            if tuple(weights[name].shape) != shape:
                raise ModelError(f"weights.npz: {name!r} has shape {tuple(weights[name].shape)}, expected {shape}")
        w = {name: np.ascontiguousarray(weights[name], dtype=np.float32) for name in expected}
        self.config = config
        self.embedding = w["embedding"]
        cells = lambda p: _Cell(config.cell, w[f"{p}/kernel"], w[f"{p}/recurrent_kernel"], w[f"{p}/bias"])  # noqa: E731
        self.encoder = [(cells(f"encoder/layer{i}/forward"), cells(f"encoder/layer{i}/backward"))
                        for i in range(config.layers)]
        self.decoder = [cells(f"decoder/layer{i}") for i in range(config.layers)]
        self.attention_kernel = w["attention/kernel"]
        self.combine_kernel = w["attention/combine_kernel"]  # applied to [context; decoder output]
        self.output_bias = w["output/bias"]
        if config.tie_embeddings:
            self.output_projection = w["output/projection"]
            self.output_kernel = self.embedding.T  # a transposed view: BLAS reads it in place, no copy
        else:
            self.output_projection = None
            self.output_kernel = w["output/kernel"]
        # Folding the embedding into the first decoder layer's input kernel turns a matmul per step into a row lookup.
        self.decoder_input_table = self.decoder[0].project(self.embedding)

    def encode(self, ids, lengths=None):
        """ids: (B, T) int, right-padded with PAD_ID. Returns the Encoded batch."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim == 1:
            ids = ids[None, :]
        B, T = ids.shape
        mask = ids != PAD_ID
        if lengths is None:
            lengths = mask.sum(axis=1)
        padded = not mask.all()
        x = self.embedding[ids]
        finals = []
        for forward, backward in self.encoder:
            outputs = []
            for cell, steps in ((forward, range(T)), (backward, range(T - 1, -1, -1))):
                xw = cell.project(x)
                h = np.zeros((B, cell.units), np.float32)
                c = np.zeros_like(h)
                out = np.zeros((B, T, cell.units), np.float32)
                for t in steps:
                    nh, nc = cell.step(xw[:, t], h, c)
                    if padded:  # padded steps leave the state as it was, as Keras masking does
                        keep = mask[:, t:t + 1]
                        nh, nc = np.where(keep, nh, h), np.where(keep, nc, c)
                    h, c = nh, nc
                    out[:, t] = h
                outputs.append((out, h, c))
            (fo, fh, fc), (bo, bh, bc) = outputs
            x = np.concatenate([fo, bo], axis=-1)
            finals.append((np.concatenate([fh, bh], -1), np.concatenate([fc, bc], -1)))
        state = np.stack([np.stack(pair) for pair in finals])
        mask_bias = np.where(mask, 0.0, -1e9).astype(np.float32)
        return Encoded(values=x, keys=x @ self.attention_kernel.T, mask_bias=mask_bias, state=state)

    def step(self, encoded, state, previous_ids):
        """One decoder step for the batch. Returns (logits (B, V), new state)."""
        new_state = np.empty_like(state)
        xw = self.decoder_input_table[previous_ids]
        x = None
        for i, cell in enumerate(self.decoder):
            if i:
                xw = cell.project(x)
            h, c = cell.step(xw, state[i, 0], state[i, 1])
            new_state[i, 0], new_state[i, 1] = h, c
            x = h
        # Batched matmuls, not einsum: a fraction of the per-call overhead, which dominates one reply's steps.
        scores = np.matmul(encoded.keys, x[:, :, None])[:, :, 0]
        scores += encoded.mask_bias
        scores -= scores.max(axis=1, keepdims=True)
        weights = np.exp(scores, out=scores)
        weights /= weights.sum(axis=1, keepdims=True)
        context = np.matmul(weights[:, None, :], encoded.values)[:, 0]
        attended = np.concatenate([context, x], axis=1) @ self.combine_kernel
        np.tanh(attended, out=attended)
        if self.output_projection is not None:
            attended = attended @ self.output_projection
        return attended @ self.output_kernel + self.output_bias, new_state

    def teacher_forced_logits(self, source_ids, target_in_ids):
        """Logits for every target position, for parity checks and perplexity: (B, T_target, V)."""
        target_in_ids = np.asarray(target_in_ids, dtype=np.int64)
        if target_in_ids.ndim == 1:
            target_in_ids = target_in_ids[None, :]
        encoded = self.encode(source_ids)
        state = encoded.state
        logits = []
        for t in range(target_in_ids.shape[1]):
            step_logits, state = self.step(encoded, state, target_in_ids[:, t])
            logits.append(step_logits)
        return np.stack(logits, axis=1)
