"""Weight snapshots and the weight-delta service: how each layer moved during training.

``snapshots`` stores weights content-addressed (a tensor that did not change costs nothing),
``sources`` opens weights from snapshots, checkpoints, files and backend artifacts, ``kernel``
computes the change metrics in one streaming pass, ``compare`` and ``trajectory`` put them
together, ``plots`` draws them. Nothing here is imported by ``import unitrack``.
"""
