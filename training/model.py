"""The Keras encoder-decoder. Layer names match the bundle's array names (see training/export.py), and every
equation here has its NumPy twin in chatbot/engine.py; tests/test_parity.py keeps the two equal."""

import keras
from keras import layers, ops

from chatbot.config import ModelConfig


@keras.saving.register_keras_serializable(package="chatbot")
class LuongAttention(layers.Layer):
    """Luong "general" attention: score(h_t, h_s) = h_t . (W h_s), then tanh(W_c [context; h_t]).

    Inputs: decoder outputs (B, T, D), encoder outputs (B, S, D) and the source mask (B, S)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True  # the decoder's target mask passes through to the output layer

    def build(self, query_shape, values_shape=None, source_mask_shape=None):
        self.kernel = self.add_weight(name="kernel", shape=(self.units, self.units), initializer="glorot_uniform")
        self.combine_kernel = self.add_weight(name="combine_kernel", shape=(2 * self.units, self.units),
                                              initializer="glorot_uniform")

    def call(self, query, values, source_mask):
        keys = ops.matmul(values, ops.transpose(self.kernel))
        scores = ops.matmul(query, ops.transpose(keys, (0, 2, 1)))
        padding = 1.0 - ops.cast(source_mask, scores.dtype)
        scores = scores - 1e9 * padding[:, None, :] if scores.dtype == "float32" else scores - 6e4 * padding[:, None, :]
        weights = ops.softmax(scores, axis=-1)
        context = ops.matmul(weights, values)
        return ops.tanh(ops.matmul(ops.concatenate([context, query], axis=-1), self.combine_kernel))

    def compute_output_shape(self, query_shape, values_shape=None, source_mask_shape=None):
        return query_shape

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="chatbot")
class ReversibleEmbedding(layers.Embedding):
    """An embedding that also maps vectors back to vocabulary scores (keras-hub's pattern): with reverse=True,
    x @ embeddings.T. Used for the output layer when the config ties embeddings."""

    def call(self, inputs, reverse=False):
        if reverse:
            return ops.matmul(inputs, ops.transpose(ops.cast(self.embeddings, inputs.dtype)))
        return super().call(inputs)

    def compute_mask(self, inputs, mask=None):
        # Keras asks for the mask without the call's arguments: float inputs mean a reverse call, whose output
        # positions are the input's, so their mask passes through (model.fit then skips padded targets).
        if "float" in str(inputs.dtype):
            return mask
        return super().compute_mask(inputs, mask)

    def compute_output_spec(self, inputs, reverse=False):
        if reverse:
            return keras.KerasTensor((*inputs.shape[:-1], self.input_dim), dtype=self.compute_dtype)
        return super().compute_output_spec(inputs)


@keras.saving.register_keras_serializable(package="chatbot")
class OutputBias(layers.Layer):
    """The output layer's bias, alone: with tied embeddings the kernel is the embedding matrix."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(input_shape[-1],), initializer="zeros")

    def call(self, inputs):
        return inputs + ops.cast(self.bias, inputs.dtype)


def _rnn(config, units, name, use_cudnn, dtype):
    cls = layers.LSTM if config.cell == "lstm" else layers.GRU
    return cls(units, return_sequences=True, return_state=True, name=name, use_cudnn=use_cudnn, dtype=dtype)


def build_model(config: ModelConfig, use_cudnn="auto", mixed_precision=False):
    """Teacher-forced model: (source_ids, target_in_ids) -> logits over the vocabulary at every target step.

    use_cudnn=False keeps the recurrent layers XLA-compilable on a GPU (cuDNN's kernels are not); the weights
    and the outputs are the same either way. mixed_precision computes in bfloat16 with float32 weights; the
    logits stay float32. It is set per layer, not through Keras' global policy, so no other model is touched."""
    dtype = "mixed_bfloat16" if mixed_precision else None
    source = keras.Input((None,), dtype="int32", name="source_ids")
    target_in = keras.Input((None,), dtype="int32", name="target_in_ids")
    embedding = ReversibleEmbedding(config.vocab_size, config.embedding_dim, mask_zero=True, name="embedding",
                                    dtype=dtype)
    states_per_layer = {"lstm": 2, "gru": 1}[config.cell]

    x = embedding(source)
    starts = []
    for i in range(config.layers):
        x = layers.Dropout(config.dropout, name=f"encoder_dropout{i}", dtype=dtype)(x)
        out = layers.Bidirectional(_rnn(config, config.encoder_units, f"encoder_rnn{i}", use_cudnn, dtype),
                                   name=f"encoder_layer{i}", dtype=dtype)(x)
        x, forward, backward = out[0], out[1:1 + states_per_layer], out[1 + states_per_layer:]
        starts.append([layers.Concatenate(name=f"encoder_state{i}_{k}", dtype=dtype)([f, b])
                       for k, (f, b) in enumerate(zip(forward, backward))])

    y = embedding(target_in)
    for i in range(config.layers):
        y = layers.Dropout(config.dropout, name=f"decoder_dropout{i}", dtype=dtype)(y)
        y = _rnn(config, config.decoder_units, f"decoder_layer{i}", use_cudnn, dtype)(y, initial_state=starts[i])[0]

    source_mask = ops.not_equal(source, 0)
    attended = LuongAttention(config.decoder_units, name="attention", dtype=dtype)(y, x, source_mask)
    attended = layers.Dropout(config.dropout, name="output_dropout", dtype=dtype)(attended)
    if config.tie_embeddings:
        projected = layers.Dense(config.embedding_dim, use_bias=False, name="output_projection", dtype=dtype)(attended)
        logits = OutputBias(name="output", dtype="float32")(embedding(projected, reverse=True))
    else:
        logits = layers.Dense(config.vocab_size, name="output", dtype="float32")(attended)
    return keras.Model({"source_ids": source, "target_in_ids": target_in}, logits, name="seq2seq")
