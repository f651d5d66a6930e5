"""Keras weights to bundle arrays and back, with every layer found by name."""

import hashlib

import numpy as np

from chatbot import bundle as bundle_io
from chatbot.engine import weight_shapes


def model_variables(model, config):
    """Bundle array name -> the Keras variable that holds it."""
    variables = {"embedding": model.get_layer("embedding").embeddings}

    def cell(prefix, rnn_layer):
        c = rnn_layer.cell
        variables.update({f"{prefix}/kernel": c.kernel, f"{prefix}/recurrent_kernel": c.recurrent_kernel,
                          f"{prefix}/bias": c.bias})

    for i in range(config.layers):
        bidirectional = model.get_layer(f"encoder_layer{i}")
        cell(f"encoder/layer{i}/forward", bidirectional.forward_layer)
        cell(f"encoder/layer{i}/backward", bidirectional.backward_layer)
        cell(f"decoder/layer{i}", model.get_layer(f"decoder_layer{i}"))
    attention, output = model.get_layer("attention"), model.get_layer("output")
    variables.update({"attention/kernel": attention.kernel, "attention/combine_kernel": attention.combine_kernel,
                      "output/bias": output.bias})
    if config.tie_embeddings:
        variables["output/projection"] = model.get_layer("output_projection").kernel
    else:
        variables["output/kernel"] = output.kernel
    assert set(variables) == set(weight_shapes(config)), "export: bundle layout and Keras model disagree"
    return variables


def model_weights(model, config):
    """The bundle's name -> float32 array dict."""
    return {name: np.asarray(v.numpy(), dtype=np.float32) for name, v in model_variables(model, config).items()}


def weights_digest(model, config):
    """A short SHA-256 of the exported weights: equal on every worker of a multi-worker run."""
    digest = hashlib.sha256()
    for name, array in sorted(model_weights(model, config).items()):
        digest.update(name.encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def assign_weights(model, config, weights, old_vocab_size=None):
    """Load bundle arrays into a freshly built model. With old_vocab_size (growing the vocabulary), the
    vocabulary-sized arrays keep their trained rows and the new rows keep the model's fresh initialisation."""
    for name, variable in model_variables(model, config).items():
        value = np.asarray(weights[name], dtype=np.float32)
        if old_vocab_size is not None and name in ("embedding", "output/kernel", "output/bias"):
            merged = np.array(variable.numpy())
            if name == "output/kernel":
                merged[:, :old_vocab_size] = value
            else:
                merged[:old_vocab_size] = value
            value = merged
        variable.assign(value)


def export_bundle(model, config, vocab, out_dir, tokenizer, decoding=None, training_summary=None):
    b = bundle_io.Bundle(model=config, vocab=vocab, weights=model_weights(model, config), tokenizer=tokenizer,
                         training=training_summary or {})
    if decoding is not None:
        b.decoding = decoding
    return bundle_io.save(b, out_dir)
