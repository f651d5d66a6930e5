"""Training: the Keras model, input pipeline, training loop and export to a model bundle. Needs TensorFlow."""
