"""Which geodataset the pipelines are built for: ``DDR_GEODATASET`` (default ``drb``).

The geodataset names a folder under ``data/01_raw`` and the prefix of its datasets
(``<geodataset>.model_inputs`` ...). Its parameters come from the Kedro environment of the same
name, so a continental run sets both::

    DDR_GEODATASET=merit kedro run --env merit --pipelines data_processing

Pipelines that also read the name from parameters (``params:<pipeline>.geodataset``) check that
both agree with :func:`check_geodataset`, so a forgotten ``--env`` fails before any work.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from ddr_pipeline.config.training import GEODATASET_PATTERN

#: Environment variable that selects the geodataset.
ENV_VAR = "DDR_GEODATASET"
#: The demo geodataset, used when the variable is unset or empty.
DEFAULT_GEODATASET = "drb"


def validate_geodataset(name: str) -> str:
    """Return ``name`` if it can name a geodataset (lower-case letters, digits, ``_``).

    There is no list of geodatasets in the code: a new basin is converted into
    ``data/01_raw/<name>`` and gets a ``conf/<name>`` environment (docs/data_formats.md).
    """
    if not re.fullmatch(GEODATASET_PATTERN, name):
        raise ValueError(
            f"invalid geodataset name {name!r} (from {ENV_VAR} or a pipeline argument): use "
            "lower-case letters, digits and '_', starting with a letter"
        )
    return name


def active_geodataset() -> str:
    """The geodataset named by ``DDR_GEODATASET`` (default ``drb``), validated.

    Read when the pipelines are created (registration, ``create_pipeline()``), never at import.
    """
    value = os.environ.get(ENV_VAR, "").strip()
    return validate_geodataset(value or DEFAULT_GEODATASET)


def check_geodataset(configured: str, geodataset: str) -> str:
    """Node helper: fail unless the ``geodataset`` parameter matches the pipeline's geodataset.

    Args:
        configured: the value of ``params:<pipeline>.geodataset`` (from the Kedro environment).
        geodataset: the geodataset the pipeline was built for (``DDR_GEODATASET``).

    Returns:
        The geodataset name.
    """
    if configured != geodataset:
        raise ValueError(
            f"the parameters are for geodataset {configured!r} but the pipeline was built for "
            f"{geodataset!r} ({ENV_VAR}): name the same geodataset in both, e.g. "
            f"`{ENV_VAR}=merit kedro run --env merit ...` (the demo drb needs neither)"
        )
    return geodataset


def geodataset_check(geodataset: str) -> Callable[[str], str]:
    """A node function: ``check_geodataset(configured, geodataset)`` for a fixed ``geodataset``."""

    def check(configured: str) -> str:
        return check_geodataset(configured, geodataset)

    check.__name__ = check.__qualname__ = "check_geodataset"
    check.__doc__ = check_geodataset.__doc__
    return check
