"""Keras networks as the kinds use them: building, training with checkpoints and resume, the convergence verdict, LiteRT flatbuffers and the runtime that answers without TensorFlow."""
