"""Retry with exponential backoff and jitter until it works or a stop event is set."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from hardware.errors import BleError

T = TypeVar("T")

#: Called after a failed attempt with the error, the attempt number and the coming delay.
FailureHook = Callable[[BaseException, int, float], None]


class _Stopped(Exception):
    """The stop event was set while waiting to retry."""


def check_backoff(backoff_min: float, backoff_max: float) -> None:
    """Raise :class:`BleError` unless 0 < backoff_min <= backoff_max."""
    if not backoff_min > 0:
        raise BleError(f"backoff_min must be positive, got {backoff_min!r}")
    if not backoff_max >= backoff_min:
        raise BleError(f"backoff_max ({backoff_max!r}) must be >= backoff_min ({backoff_min!r})")


def backoff_wait(backoff_min: float, backoff_max: float) -> wait_exponential_jitter:
    """Delays min, 2*min, 4*min ... plus up to min of jitter, always within [min, max]."""
    return wait_exponential_jitter(
        multiplier=backoff_min, max=backoff_max, jitter=backoff_min, min=backoff_min
    )


async def wait_for_event(event: asyncio.Event, within: float | None) -> bool:
    """Wait until ``event`` is set, at most ``within`` seconds; True if it was set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), within)
    return event.is_set()


async def wait_for_any(*events: asyncio.Event, within: float | None = None) -> None:
    """Wait until one of ``events`` is set, at most ``within`` seconds."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


def _retryable(exc: BaseException) -> bool:
    # Cancellation and interrupts are BaseException and end the loop, as does a stop request.
    return isinstance(exc, Exception) and not isinstance(exc, _Stopped)


async def retry_until_stopped(
    attempt: Callable[[], Awaitable[T]],
    stop: asyncio.Event,
    *,
    backoff_min: float,
    backoff_max: float,
    on_failure: FailureHook,
) -> T | None:
    """Await ``attempt()`` until it returns, backing off between failures; None once stopped."""

    async def guarded() -> T:
        if stop.is_set():
            raise _Stopped
        return await attempt()

    async def pause(seconds: float) -> None:
        if await wait_for_event(stop, seconds):
            raise _Stopped

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        on_failure(
            error if error is not None else BleError("attempt failed"),
            state.attempt_number,
            state.upcoming_sleep,
        )

    retrying = AsyncRetrying(
        sleep=pause,
        wait=backoff_wait(backoff_min, backoff_max),
        retry=retry_if_exception(_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return cast(T, await retrying(guarded))
    except _Stopped:
        return None
