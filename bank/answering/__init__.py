"""Answering with a bank: the router (every image through every class), and serving it over HTTP (request batching, uploads) or exporting it for TensorFlow Serving."""
