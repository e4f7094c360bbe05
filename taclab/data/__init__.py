"""Datasets: declared schemas, generation, loading and checking (see docs/datasets.md).

- :mod:`taclab.data.schema`: :class:`Feature` and :class:`Schema`, the declaration a dataset stores.
- :mod:`taclab.data.generate`: the generator registry and the generation driver.
- :mod:`taclab.data.meta`: ``dataset.json``, the card, checksums, the format-1 reader and its migration.
- :mod:`taclab.data.reader`: :func:`load`, :func:`load_arrays`, :func:`iter_batches`, :func:`verify`,
  :func:`fingerprint`.
"""

from taclab.data.generate import (
    GENERATORS,
    ConfigError,
    GenerationInterrupted,
    Generator,
    Shard,
    SplitConfig,
    generate,
    get_generator,
    read_config,
    register_generator,
)
from taclab.data.meta import FORMAT_VERSION, DatasetError, migrate, read_meta
from taclab.data.reader import fingerprint, iter_batches, load, load_arrays, verify
from taclab.data.schema import EPISODE_KEYS, KINDS, LAYOUTS, Feature, Schema

__all__ = [
    "EPISODE_KEYS",
    "FORMAT_VERSION",
    "GENERATORS",
    "KINDS",
    "LAYOUTS",
    "ConfigError",
    "DatasetError",
    "Feature",
    "GenerationInterrupted",
    "Generator",
    "Schema",
    "Shard",
    "SplitConfig",
    "fingerprint",
    "generate",
    "get_generator",
    "iter_batches",
    "load",
    "load_arrays",
    "migrate",
    "read_config",
    "read_meta",
    "register_generator",
    "verify",
]
