"""A quiet console for ``kedro run``: known third-party warnings filtered, verbosity on request.

``settings.py`` and ``cli.py`` (imported when the Kedro CLI starts) register
:data:`KNOWN_WARNINGS` with :mod:`warnings` and with the ``py.warnings`` logger; ``conf/logging.yml`` keeps Kedro's
per-dataset load/save lines at WARNING. ``DDR_VERBOSE=1`` turns both off (and makes ``kedro run``
print full error tracebacks). Training's progress bar is
:class:`ddr_pipeline.training.progress.ProgressBar`.
"""

from __future__ import annotations

import logging
import os
import re
import warnings

#: Environment variable that asks for the verbose console (any value but ``""``/``0``/``false``).
VERBOSE_ENV = "DDR_VERBOSE"

#: ``(message regex, category)`` of third-party warnings that say nothing to a user of this
#: project (they are about the libraries' own internals). Regexes match anywhere in the message.
KNOWN_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # OmegaConf 2.4 deprecation hit by Kedro's and kedro-mlflow's resolver registration.
    (r"register_new_resolver\(\) is deprecated", UserWarning),
    # MLflow, on import, about its own pyfunc classes (printed with raw colour codes).
    (r"Add type hints to the `predict` method", UserWarning),
    # Kedro on dataset names with dots: the project names datasets `<namespace>.<name>` on
    # purpose (Kedro namespaces, docs/pipelines.md).
    (r"dataset names contain '\.' characters", UserWarning),
    # MLflow's hint to add a model signature / input example (the model takes tensors).
    (r"Model logged without a signature", UserWarning),
)

_PATTERNS = tuple((re.compile(pattern), category) for pattern, category in KNOWN_WARNINGS)


def verbose() -> bool:
    """Whether ``DDR_VERBOSE`` asks for the verbose console."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def is_known_warning(message: str, category: type[Warning] | None = None) -> bool:
    """Whether ``message`` (of ``category``, if known) is one of :data:`KNOWN_WARNINGS`."""
    return any(
        pattern.search(message) and (category is None or issubclass(category, known))
        for pattern, known in _PATTERNS
    )


class KnownWarningsLogFilter(logging.Filter):
    """Drops :data:`KNOWN_WARNINGS` from the ``py.warnings`` logger (unless verbose).

    Needed besides the :mod:`warnings` filters: MLflow wraps some calls in its own
    ``simplefilter("once", UserWarning)``, which outranks them; Kedro routes warnings to logging.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record unless it is a known warning."""
        return verbose() or not is_known_warning(record.getMessage())


def filter_known_warnings() -> None:
    """Ignore :data:`KNOWN_WARNINGS` (no-op when verbose): :mod:`warnings` filters, and a filter
    on the ``py.warnings`` logger that catches those raised under other libraries' filters."""
    if verbose():
        return
    for pattern, category in KNOWN_WARNINGS:
        # warnings matches from the start of the message: allow any prefix (colour codes).
        warnings.filterwarnings("ignore", message=f"(?s).*{pattern}", category=category)
    log = logging.getLogger("py.warnings")
    if not any(isinstance(f, KnownWarningsLogFilter) for f in log.filters):
        log.addFilter(KnownWarningsLogFilter())


def apply_verbosity() -> None:
    """With ``DDR_VERBOSE``, show Kedro's per-dataset load/save lines (WARNING otherwise)."""
    if verbose():
        logging.getLogger("kedro.io.data_catalog").setLevel(logging.INFO)
