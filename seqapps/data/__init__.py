"""Dataset resolution, format readers, vectorizers and tf.data pipelines."""
