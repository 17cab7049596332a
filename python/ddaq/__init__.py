"""ddaq: differentiable full-DAQ optimization (Python bindings).

Event files, the exact EMD and its surrogate, and the cost models, on numpy
arrays. Errors raise ddaq.Error with the same one-line messages as the
`ddaq` command line.
"""
from ._ddaq import *  # noqa: F401,F403
from ._ddaq import __version__  # noqa: F401


from ._ddaq import _Graph, _Pipeline, Error
import json as _json
import os as _os


def _config_text(config):
    """(JSON text, source name, base folder) of a config dict or file path."""
    if isinstance(config, dict):
        return _json.dumps(config), "<dict>", _os.getcwd()
    try:
        with open(config) as f:
            return f.read(), str(config), _os.path.dirname(_os.path.abspath(config))
    except OSError as e:
        raise Error(f"{config}: cannot read the configuration ({e.strerror})") from None


class Pipeline(_Pipeline):
    """The ECON-T pipeline from a config: a dict, or a path to a ddaq JSON config.

    Relative paths in the config (the EMD surrogate) resolve against the
    config file's folder, or the current folder for a dict.
    """

    def __init__(self, config):
        super().__init__(*_config_text(config))


class Graph(_Graph):
    """Any `graph` section (any stages, any detector) as a runnable graph.

    `forward(x, training=False)` returns every tensor of the graph by name,
    with autograd; `named_parameters()` the trainable tensors, so a torch
    optimizer (and a loss written in Python) can train it in a notebook.
    Stage types written in Python join through `ddaq.register_stage`.
    """

    def __init__(self, config, seed=1):
        text, source, _ = _config_text(config)
        super().__init__(text, source, seed)
