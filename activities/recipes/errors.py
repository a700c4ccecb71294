"""How a recipe run fails: the error types it raises and the messages they carry."""

from __future__ import annotations

import re

from temporalio.exceptions import ApplicationError

from activities.recipes.report import Outcome
from opsflow.errors import ErrorType
from opsflow.messages import RecipeRunInput
from opsflow.secrets import redact

# Lines of the log tail the failure message itself carries (the details hold the tail).
FAILURE_LINES = 5
# A failed puppet/chef run prints many lines; these start the one worth a message.
_ERROR_LINE = re.compile(r"^(Error|ERROR|FATAL)\b")


def redacted_error(err: ApplicationError, secrets: list[str]) -> ApplicationError:
    if not any(secrets):
        return err
    details = [redact(d, secrets) if isinstance(d, str) else d for d in err.details]
    return ApplicationError(
        redact(err.message, secrets),
        *details,
        type=err.type,
        non_retryable=err.non_retryable,
    )


def recipe_failed(request: RecipeRunInput, outcome: Outcome) -> ApplicationError:
    # The first line says what failed and why; the last lines of the log follow, so the
    # Temporal UI's failure message alone is enough to start on (the details hold more).
    said = [line for line in outcome.log_tail.splitlines() if line.partition(" ")[2].strip()]
    last = said[-FAILURE_LINES:]
    if outcome.app_error:  # the app's release step failed, not a recipe
        first = f"{request.stack}/{request.hostname}: {outcome.app_error}"
    else:
        first = (
            f"{request.stack}/{request.hostname}: recipe {outcome.recipe or '?'} failed with "
            f"exit code {outcome.exit_code}: {_failure_line(outcome)}"
        )
    return ApplicationError(
        first + "".join(f"\n| {line}" for line in last),
        outcome.log_tail,
        type=ErrorType.RECIPE_FAILED,
        non_retryable=True,
    )


def _failure_line(outcome: Outcome) -> str:
    """The line that says why: among the failed recipe's lines, the tool's last error line
    (puppet `Error:`, chef `FATAL:`/`ERROR:`), else the last line. Timestamps dropped."""
    texts = [line.partition(" ")[2].strip() for line in outcome.log.splitlines()]
    marker = f"opsflow: running {outcome.recipe}"
    starts = [i for i, text in enumerate(texts) if text == marker]
    own = [text for text in texts[starts[-1] + 1 if starts else 0 :] if text]
    errors = [text for text in own if _ERROR_LINE.match(text)]
    return (errors or own or ["no output"])[-1]
