"""ddaq: differentiable full-DAQ optimization (Python bindings).

Event files, the exact EMD and its surrogate, and the cost models, on numpy
arrays. Errors raise ddaq.Error with the same one-line messages as the
`ddaq` command line.
"""
from ._ddaq import *  # noqa: F401,F403
from ._ddaq import __version__  # noqa: F401
