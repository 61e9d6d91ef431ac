"""Networks trained elsewhere (ImageNet), rebuilt in Keras from their published weights: :mod:`.efficientnet`,
its weight file read by :mod:`.torchfile` without torch and without running code."""
