"""gridlib: grid-shaped neural networks and the local learning rules that train them.

The library behind the gridlib book. One module per idea:

- :mod:`gridlib.scale`      the CI / full switch (``GRIDLIB_SCALE``)
- :mod:`gridlib.data`       real data sets with a checksummed cache
- :mod:`gridlib.experiment` the one training loop (progress, checkpoints, resume)
- :mod:`gridlib.devices`    one CPU to many devices: meshes, shardings, several processes
- :mod:`gridlib.results`    results JSON with provenance
- :mod:`gridlib.plotting`   one figure style
- :mod:`gridlib.cli`        ``python -m gridlib <experiment> --key value``
"""

from importlib import metadata as _metadata

try:
    #: The installed distribution's version: ``version`` in ``pyproject.toml``, the one source.
    __version__: str = _metadata.version("gridlib")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
