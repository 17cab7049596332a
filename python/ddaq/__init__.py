"""ddaq: differentiable full-DAQ optimization (Python bindings).

Event files, the exact EMD and its surrogate, and the cost models, on numpy
arrays. Errors raise ddaq.Error with the same one-line messages as the
`ddaq` command line.
"""
from ._ddaq import *  # noqa: F401,F403
from ._ddaq import __version__  # noqa: F401


from ._ddaq import _Pipeline, Error
import json as _json
import os as _os


class Pipeline(_Pipeline):
    """The ECON-T pipeline from a config: a dict, or a path to a ddaq JSON config.

    Relative paths in the config (the EMD surrogate) resolve against the
    config file's folder, or the current folder for a dict.
    """

    def __init__(self, config):
        if isinstance(config, dict):
            super().__init__(_json.dumps(config), "<dict>", _os.getcwd())
        else:
            try:
                with open(config) as f:
                    text = f.read()
            except OSError as e:
                raise Error(f"{config}: cannot read the configuration ({e.strerror})") from None
            super().__init__(text, str(config), _os.path.dirname(_os.path.abspath(config)))
