"""Project CLI: Kedro's ``kedro run`` with short, actionable messages for the common mistakes.

Kedro picks this module's ``cli`` group up and lets its ``run`` replace the built-in one. The
command and its options are Kedro's own; only the errors change: a mistake in how the project is
run (:func:`explain` recognises it) ends with one ``Error: ...`` paragraph and exit status 1
instead of a library traceback. ``DDR_VERBOSE=1`` restores the traceback.
"""

from __future__ import annotations

from ddr_pipeline.project.console import VERBOSE_ENV, filter_known_warnings, verbose

# First (Kedro imports this module when the CLI starts): the imports below pull MLflow in.
filter_known_warnings()

import copy  # noqa: E402
import functools  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import click  # noqa: E402
from kedro.framework.cli.project import run as kedro_run  # noqa: E402

from ddr_pipeline.config.training import ConfigError  # noqa: E402
from ddr_pipeline.model_store.checkpoints import CheckpointError  # noqa: E402
from ddr_pipeline.pipeline_registry import UnknownPipelineError  # noqa: E402
from ddr_pipeline.project.preflight import UserError  # noqa: E402

#: Errors whose message is written for the user (what is wrong and what to do).
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    UnknownPipelineError,
    ConfigError,
    CheckpointError,
)


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and its causes / contexts, outermost first."""
    chain: list[BaseException] = []
    while error is not None and error not in chain:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain


def _raised_here(error: BaseException) -> bool:
    """Whether ``error`` was raised by this package (its messages name the file and the fix)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("ddr_pipeline")


def explain(error: BaseException) -> str | None:
    """The user-facing message of ``error`` (or of an error it wraps), else ``None``.

    Recognised: :data:`USER_ERRORS` and a ``FileNotFoundError`` raised by this package.
    """
    for link in _chain(error):
        if isinstance(link, USER_ERRORS) or (
            isinstance(link, FileNotFoundError) and _raised_here(link)
        ):
            return str(link)
    return None


def _with_short_errors(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except Exception as error:
            message = explain(error)
            if message is None or verbose():
                raise
            raise click.ClickException(
                f"{message}\n(The full error: rerun with {VERBOSE_ENV}=1.)"
            ) from None

    return run


run = copy.copy(kedro_run)
run.callback = _with_short_errors(kedro_run.callback)


@click.group(name="ddr_pipeline")
def cli() -> None:
    """ddr_pipeline project commands."""


cli.add_command(run, "run")
