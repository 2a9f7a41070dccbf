"""Where users already train: Lightning, the Hugging Face Trainer, Keras, and distributed runs.

Each framework module imports its framework at import time, so import the one you use
(``from unitrack.integrations.lightning import UnitrackLogger``); ``import unitrack`` never does.
"""
