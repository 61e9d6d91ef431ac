"""Images in: decoding files safely, bringing images to a model's input spec, reading folders and datasets, streaming them to training."""
