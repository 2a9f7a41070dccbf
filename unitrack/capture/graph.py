"""The model's graph for TensorBoard's Graphs tab , traced from an example input.

Tracing runs the model once, so it happens in ``watch()`` on the caller's thread, while the
model is not training. The result is TensorBoard's own ``GraphDef`` protobuf, stored as the
artifact ``model/graph.pb``; the TensorBoard backend turns it into a graph event.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

log = logging.getLogger("unitrack")

GRAPH_ARTIFACT = "model/graph.pb"


def model_graph(model: Any, example_input: Any) -> bytes | None:
    """The serialized ``GraphDef`` of ``model`` run on ``example_input``, or None when it cannot be traced."""
    from importlib.util import find_spec

    if find_spec("tensorboard") is None:
        log.warning("unitrack: the model graph needs TensorBoard: pip install 'unitrack[tensorboard]'")
        return None
    from torch.utils.tensorboard._pytorch_graph import graph

    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    was_training = getattr(model, "training", False)
    try:
        with warnings.catch_warnings():  # torch.jit.trace's deprecation notice is not the user's concern
            warnings.simplefilter("ignore", DeprecationWarning)
            graph_def, _ = graph(model, inputs, use_strict_trace=False)
    except Exception as exc:  # a model that cannot be traced still trains; say why once
        log.warning("unitrack: could not trace the model graph: %s: %s", type(exc).__name__, exc)
        return None
    finally:
        model.train(was_training)
    return graph_def.SerializeToString()
