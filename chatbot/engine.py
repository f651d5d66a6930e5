"""The encoder-decoder in NumPy, float32 throughout: the same equations as training/model.py's Keras layers.

Weights are named for what they are (see `weight_shapes`); training/export.py writes exactly these arrays.
"""

import dataclasses
import mmap

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


def matmul(x, w):
    """x @ w, for an x of any leading shape. This machine's OpenBLAS packs the whole of w for every matrix
    product, so a product with 2 to 7 rows cost 5-9 times a one-row product (198 against 20 microseconds for
    the default model's output layer); a stack of one-row products costs what its rows do (93). Beam search
    and the encoder's per-token products of a short input live here."""
    rows = x.reshape(-1, x.shape[-1])
    if 1 < len(rows) < 8:
        return np.matmul(rows[:, None, :], w).reshape(*x.shape[:-1], w.shape[-1])
    return x @ w


FOLD_BLOCK = 32  # vocabulary rows folded together (see _FoldedInputs)


class _Cell:
    """One recurrent layer's step, given its input already multiplied by the input kernel.

    LSTM: sigmoid(z) = 0.5 * tanh(z / 2) + 0.5, so the gate inputs are scaled (the input, forget and output
    gates' by one half) and a single tanh serves all four gates. The scaling is done on the products, not on
    copies of the kernels, which would hold every recurrent weight twice."""

    def __init__(self, kind, kernel, recurrent_kernel, bias):
        self.kind, self.units = kind, recurrent_kernel.shape[-2]
        self.kernel, self.recurrent = kernel, recurrent_kernel
        if kind == "gru":  # Keras' reset_after GRU keeps separate input and recurrent biases
            self.input_bias, self.recurrent_bias, self.scale = bias[0], bias[1], None
        else:
            u = self.units
            self.scale = np.full(4 * u, 0.5, np.float32)
            self.scale[2 * u:3 * u] = 1.0
            self.input_bias, self.recurrent_bias = bias, None

    def project(self, x):
        """The gate inputs for inputs x (..., n), scaled for step()."""
        out = matmul(x, self.kernel)
        out += self.input_bias
        if self.scale is not None:
            out *= self.scale
        return out

    def step(self, xw, h, c):
        u = self.units
        hr = matmul(h, self.recurrent) if h.ndim == 2 else np.matmul(h, self.recurrent)
        if self.kind == "lstm":
            z = hr
            z *= self.scale
            z += xw
            np.tanh(z, out=z)
            gates = z * np.float32(0.5)
            gates += np.float32(0.5)  # sigmoid of the input, forget and output gates; z[..., 2u:3u] is tanh(g)
            c = gates[..., u:2 * u] * c
            c += gates[..., :u] * z[..., 2 * u:3 * u]
            h = np.tanh(c)
            h *= gates[..., 3 * u:]
            return h, c
        hr += self.recurrent_bias
        z = _sigmoid(xw[..., :u] + hr[..., :u])
        r = _sigmoid(xw[..., u:2 * u] + hr[..., u:2 * u])
        hh = np.tanh(xw[..., 2 * u:] + r * hr[..., 2 * u:])
        return z * h + (1 - z) * hh, c


class _Bidirectional(_Cell):
    """The two directions of a bidirectional layer as one stacked cell: project() gives the forward and backward
    gate inputs side by side, step() takes (2, B, units) states."""

    def __init__(self, forward, backward):
        self.kind, self.units, self.scale = forward.kind, forward.units, forward.scale
        self.directions = (forward, backward)
        self.recurrent = np.stack([forward.recurrent, backward.recurrent])
        self.recurrent_bias = None if forward.recurrent_bias is None else \
            np.stack([forward.recurrent_bias, backward.recurrent_bias])[:, None, :]

    def project(self, x):
        return np.concatenate([direction.project(x) for direction in self.directions], axis=-1)


class _FoldedInputs:
    """A first layer's gate inputs for token ids: project(embedding) as a table, so that a step looks a row up
    instead of multiplying. Rows are folded when first needed, FOLD_BLOCK at a time (a block always by the same
    product, so a row never depends on which tokens came first), into an anonymous memory map whose pages take
    memory only once written: a cold one-shot reply neither waits for nor holds the whole table. (NumPy's own
    large arrays ask for 2 MB huge pages, which would make every folded block cost 2 MB.)"""

    def __init__(self, embedding, project):
        self.embedding, self.project = embedding, project
        shape = (len(embedding), project(embedding[:1]).shape[-1])
        self.table = np.frombuffer(mmap.mmap(-1, 4 * shape[0] * shape[1]), np.float32).reshape(shape)
        self.folded = np.zeros(-(-shape[0] // FOLD_BLOCK), bool)

    def __getitem__(self, ids):
        """Rows for ids: an int gives one row, an array gives an array of rows."""
        if isinstance(ids, int):
            missing = () if self.folded[ids // FOLD_BLOCK] else (ids // FOLD_BLOCK,)
        else:
            blocks = ids // FOLD_BLOCK
            folded = self.folded[blocks]
            missing = () if folded.all() else np.unique(blocks[~folded])
        for block in missing:
            rows = slice(block * FOLD_BLOCK, (block + 1) * FOLD_BLOCK)
            self.table[rows] = self.project(self.embedding[rows])
            self.folded[block] = True
        return self.table[ids]


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
        self.encoder = [_Bidirectional(cells(f"encoder/layer{i}/forward"), cells(f"encoder/layer{i}/backward"))
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
        self._encoder_inputs = _FoldedInputs(self.embedding, self.encoder[0].project)
        self._decoder_inputs = _FoldedInputs(self.embedding, self.decoder[0].project)

    def encode(self, ids):
        """ids: (B, T) int, right-padded with PAD_ID. Returns the Encoded batch."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim == 1:
            ids = ids[None, :]
        B, T = ids.shape
        mask = ids != PAD_ID
        keep = None
        if not mask.all():  # padded steps leave the state as it was, as Keras masking does
            keep = np.stack([mask.T, mask.T[::-1]], axis=1)[..., None]  # (T, direction, B, 1)
        finals = []
        for i, cell in enumerate(self.encoder):
            xw = cell.project(x) if i else self._encoder_inputs[ids]
            gates = xw.shape[-1] // 2
            # Time-major, both directions side by side; the backward direction reads the sequence from its end.
            inputs = np.empty((T, 2, B, gates), np.float32)
            inputs[:, 0] = xw[:, :, :gates].transpose(1, 0, 2)
            inputs[:, 1] = xw[:, ::-1, gates:].transpose(1, 0, 2)
            h = np.zeros((2, B, cell.units), np.float32)
            c = np.zeros_like(h)
            out = np.empty((T, 2, B, cell.units), np.float32)
            for t in range(T):
                nh, nc = cell.step(inputs[t], h, c)
                if keep is not None:
                    nh, nc = np.where(keep[t], nh, h), np.where(keep[t], nc, c)
                h = out[t] = nh
                c = nc
            x = np.ascontiguousarray(np.concatenate([out[:, 0], out[::-1, 1]], axis=-1).transpose(1, 0, 2))
            finals.append((np.concatenate([h[0], h[1]], -1), np.concatenate([c[0], c[1]], -1)))
        state = np.stack([np.stack(pair) for pair in finals])
        mask_bias = np.where(mask, 0.0, -1e9).astype(np.float32)
        return Encoded(values=x, keys=matmul(x, self.attention_kernel.T), mask_bias=mask_bias, state=state)

    def step(self, encoded, state, previous_ids):
        """One decoder step for the batch (previous_ids: an array, or an int for a batch of one). Returns
        (logits (B, V), new state)."""
        new_state = np.empty_like(state)
        xw = self._decoder_inputs[previous_ids]
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
        attended = matmul(np.concatenate([context, x], axis=1), self.combine_kernel)
        np.tanh(attended, out=attended)
        if self.output_projection is not None:
            attended = matmul(attended, self.output_projection)
        logits = matmul(attended, self.output_kernel)
        logits += self.output_bias
        return logits, new_state

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
