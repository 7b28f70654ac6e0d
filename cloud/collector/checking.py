"""Where the collector checks and writes a batch: in its own writer thread, or a second process.

Checking a data envelope against the contract and turning it into line protocol is the
collector's largest share of work per message, and it is pure Python: in the process that also
runs paho's network loop it competes for one interpreter lock with receiving and acking. The
:class:`ProcessChecker` moves checking and writing into a child process of the collector
(``batch.check_process``, on by default), so receiving and storing use two cores; the
:class:`LocalChecker` does it all in the calling thread (tests, one-core hosts).

Either way the collector's contract stays: a batch's result comes only when every message of it
is in the store or the dead-letter store, and only then does the collector ack them. If
the child dies, the batch raises :class:`~cloud.errors.CheckerFailed`, nothing of it is acked,
the collector stops and the broker redelivers to the next one.

The child ignores SIGTERM and SIGINT: a stop signal to the whole process group (systemd's
``KillMode=control-group``, Ctrl-C in a terminal) is the collector's to handle, which drains
through the child and then closes the pipe; the child leaves when the pipe closes (or exits at
once when its collector is gone without closing it).

>>> # checker = LocalChecker(intake, BatchWriter(store, dead_letters, initial_s=0.5, max_s=30))
>>> # pending = checker.submit([Received(topic, payload, received_at, mid=1, qos=1)])
>>> # written = pending.result()   # every message stored or dead-lettered: ack them now
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import queue
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from cloud.collector.batch import Abandoned, BatchWriter, Message, Received, Written
from cloud.collector.intake import Intake
from cloud.errors import CheckerFailed
from protocol.errors import MachikadoError

if TYPE_CHECKING:
    from cloud.config import CollectorConfig

log = structlog.get_logger(__name__)

#: How long the child may take to start (import, open the store, read the manifest).
START_TIMEOUT_S = 60.0
#: How often an orphaned child notices that its collector is gone.
_ORPHAN_CHECK_S = 0.5
#: Signals that stop the collector; the child leaves them to the collector (see above).
_STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


class Pending(Protocol):
    """A batch handed to a checker: :meth:`result` waits until every message of it is durable."""

    def result(self) -> Written:
        """What the write did; raises what it raised (:class:`Abandoned`, CheckerFailed...)."""
        ...


class Checker(Protocol):
    """Checks batches of received messages and makes each message durable (stored or
    dead-lettered), one batch after another in the order they were submitted."""

    #: Called once per retry while the store is unavailable (the collector counts them).
    on_retry: Callable[[], None] | None

    def submit(self, batch: Sequence[Received]) -> Pending:
        """Hand ``batch`` over; returns once the checker has taken it (it may still be writing
        it: the next batch can then be checked while this one is stored)."""
        ...

    def give_up(self) -> None:
        """Stop retrying a store that stays down (the drain's deadline has passed)."""
        ...

    def close(self) -> None:
        """Release what it holds; a batch in progress is not waited for."""
        ...


class _Result:
    """A :class:`Pending` settled by whoever writes the batch."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._written: Written | None = None
        self._error: BaseException | None = None

    def settle(self, written: Written | None = None, error: BaseException | None = None) -> None:
        self._written, self._error = written, error
        self._done.set()

    def result(self) -> Written:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._written is not None
        return self._written


class LocalChecker:
    """Checks and writes in the calling thread: :meth:`submit` returns when the batch is written."""

    def __init__(self, intake: Intake, writer: BatchWriter) -> None:
        self.intake = intake
        self.writer = writer
        self.on_retry: Callable[[], None] | None = None
        writer.on_retry = self._retried

    def check(self, batch: Sequence[Received]) -> list[Message]:
        """Each received message with what the checks make of it."""
        take = self.intake
        return [
            Message(
                r.topic,
                r.payload,
                r.received_at,
                take(r.topic, r.payload, r.received_at),
                r.mid,
                r.qos,
                r.session,
            )
            for r in batch
        ]

    def submit(self, batch: Sequence[Received]) -> Pending:
        done = _Result()
        try:
            done.settle(self.writer.write(self.check(batch)))
        except Exception as exc:  # result() raises it where the collector waits for it
            done.settle(error=exc)
        return done

    def give_up(self) -> None:
        self.writer.give_up.set()

    def close(self) -> None:
        """Nothing to release: the store and the dead-letter store belong to the caller."""

    def _retried(self) -> None:
        if self.on_retry is not None:
            self.on_retry()


class ProcessChecker:
    """Checks and writes in a child process that opens its own store, dead letters and manifest.

    A batch goes to the child as (topic, payload, receive time) of each message, pickled once.
    The child checks it and answers ``taken`` (then the next batch may come, and is checked
    while this one is written), then ``written`` with the
    :class:`~cloud.collector.batch.Written` summary (seqs per stream, counts); a ``retry`` note
    comes for each store retry. A reader thread here hands the answers to the waiting callers.
    """

    def __init__(self, cfg: CollectorConfig) -> None:
        ctx = multiprocessing.get_context("spawn")  # the collector runs threads: never fork
        self.on_retry: Callable[[], None] | None = None
        self._give_up = ctx.Event()
        self._conn, child_end = ctx.Pipe()
        from machikado.logs import current

        self._proc = ctx.Process(
            target=serve,
            args=(cfg, child_end, self._give_up, os.getpid(), current()),
            name="machikado-collector-checker",
            daemon=True,
        )
        # The child is born with the stop signals blocked (a signal mask outlives exec), so one
        # sent to the process group while it starts up waits until serve() ignores it.
        unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            self._proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
        child_end.close()
        self._await_ready()
        self._next_id = 0
        self._lock = threading.Lock()
        self._taken: dict[int, _Result] = {}
        self._written: dict[int, _Result] = {}
        self._failure: str | None = None
        self._reader = threading.Thread(target=self._read, name="checker-reader", daemon=True)
        self._reader.start()
        log.info("checker_started", pid=self._proc.pid)

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def submit(self, batch: Sequence[Received]) -> Pending:
        items = [(r.topic, r.payload, r.received_at) for r in batch]
        taken, written = _Result(), _Result()
        with self._lock:
            if self._failure is not None:
                raise CheckerFailed(self._failure)
            self._next_id += 1
            batch_id = self._next_id
            self._taken[batch_id], self._written[batch_id] = taken, written
        try:
            self._conn.send_bytes(pickle.dumps((batch_id, items), protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            raise CheckerFailed(self._death(exc)) from None
        taken.result()  # raises if the child failed before taking it
        return written

    def give_up(self) -> None:
        self._give_up.set()

    def close(self) -> None:
        """End the child: it finishes the batch it holds (if any) and exits."""
        self._give_up.set()
        self._end_input()
        self._proc.join(10)
        if self._proc.is_alive():
            log.warning("checker_killed", pid=self._proc.pid, why="it did not leave within 10 s")
            self._proc.kill()
            self._proc.join()
        self._reader.join(5)
        self._conn.close()
        log.info("checker_stopped", pid=self._proc.pid, exitcode=self._proc.exitcode)

    def _end_input(self) -> None:
        """Close the pipe towards the child, so that it reads the end of input."""
        # Closing our end is not enough: while the reader thread is blocked reading it, the
        # socket stays open until that read returns. Shutting down our sending side ends it.
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(self._conn.fileno())) as s:
            s.shutdown(socket.SHUT_WR)

    def _read(self) -> None:
        try:
            while True:
                kind, batch_id, value = self._conn.recv()
                if kind == "retry":
                    if self.on_retry is not None:
                        self.on_retry()
                    continue
                with self._lock:
                    if kind == "taken":
                        self._taken.pop(batch_id).settle(Written())
                        continue
                    done = self._written.pop(batch_id)
                if kind == "written":
                    done.settle(value)
                elif kind == "abandoned":
                    done.settle(error=Abandoned(str(value)))
                else:
                    why = f"the checking process failed: {value}"
                    done.settle(error=CheckerFailed(why))
                    self._fail(why)
                    return
        except (EOFError, OSError) as exc:
            self._fail(self._death(exc))
        except Exception as exc:  # an answer out of turn: nothing it says can be trusted
            self._fail(f"the checking process answered what cannot be read: {exc!r}")

    def _fail(self, why: str) -> None:
        """Every batch not yet settled fails with ``why``; so does every later submit."""
        with self._lock:
            self._failure = why
            waiting = [*self._taken.values(), *self._written.values()]
            self._taken.clear()
            self._written.clear()
        for result in waiting:
            result.settle(error=CheckerFailed(why))

    def _await_ready(self) -> None:
        try:
            if not self._conn.poll(START_TIMEOUT_S):
                self._proc.kill()
                raise CheckerFailed(
                    f"the checking process did not start within {START_TIMEOUT_S:g} s"
                )
            kind, _id, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise CheckerFailed(self._death(exc)) from None
        if kind != "ready":
            self._proc.join(10)
            raise CheckerFailed(str(value))

    def _death(self, exc: BaseException) -> str:
        self._proc.join(1)
        code = self._proc.exitcode
        how = "is still running" if code is None else f"exited with code {code}"
        return f"the checking process {how} ({type(exc).__name__}: the pipe to it closed)"


# -- the child -------------------------------------------------------------------------------


def serve(
    cfg: CollectorConfig,
    conn: Connection,
    give_up: Any,
    parent_pid: int,
    logging: dict[str, str | bool],
) -> None:
    """The child's main: open what it writes to, then check and write batches until EOF.

    This thread checks; a writer thread writes the checked batches in order, so checking the
    next batch overlaps storing this one. The end of input (the collector closed the pipe) is
    the clean way out: what is held is written, and the process exits 0.
    """
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    from machikado.logs import configure_like_parent

    if logging:
        configure_like_parent(logging)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    try:
        checker, close = _open(cfg, give_up)
    except MachikadoError as exc:
        conn.send(("failed", 0, str(exc)))
        return
    answer = _Answers(conn)
    checker.on_retry = lambda: answer("retry", 0, None)
    checked: queue.Queue[tuple[int, list[Message]] | None] = queue.Queue(maxsize=1)
    writer = threading.Thread(target=_write_batches, args=(checker, checked, answer))
    writer.start()
    try:
        answer("ready", 0, None)
        while (item := _receive(conn)) is not None:
            batch_id, received = item
            checked.put((batch_id, checker.check(received)))
            answer("taken", batch_id, None)
    finally:
        checked.put(None)
        writer.join()
        close()


class _Answers:
    """Sends answers to the collector from the checking and the writing thread, one at a time."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def __call__(self, kind: str, batch_id: int, value: object) -> None:
        # OSError: the collector is gone; the orphan check ends this process.
        with self._lock, contextlib.suppress(OSError):
            self._conn.send((kind, batch_id, value))


def _receive(conn: Connection) -> tuple[int, list[Received]] | None:
    try:
        data = conn.recv_bytes()
    except (EOFError, OSError):
        return None  # the collector closed the pipe (or is gone): nothing more comes
    batch_id, items = pickle.loads(data)
    return batch_id, [Received(topic, payload, at) for topic, payload, at in items]


def _write_batches(
    checker: LocalChecker,
    checked: queue.Queue[tuple[int, list[Message]] | None],
    answer: _Answers,
) -> None:
    while (item := checked.get()) is not None:
        batch_id, messages = item
        try:
            written = checker.writer.write(messages)
        except Abandoned as exc:
            answer("abandoned", batch_id, str(exc))
            continue
        except Exception as exc:
            log.exception("checker_failed", messages=len(messages))
            answer("failed", batch_id, f"{type(exc).__name__}: {exc}")
            os._exit(1)  # the collector acks nothing more from here; it stops and restarts
        answer("written", batch_id, written)


def _open(cfg: CollectorConfig, give_up: Any) -> tuple[LocalChecker, Callable[[], None]]:
    from cloud.deadletter import DeadLetters
    from cloud.fleet import load_fleet
    from cloud.store import open_store

    fleet = load_fleet(cfg.fleet.manifest)
    store = open_store(cfg.store)
    try:
        dead_letters = DeadLetters(cfg.deadletter.path, policy=cfg.deadletter.policy())
    except BaseException:
        store.close()
        raise
    writer = BatchWriter(
        store,
        dead_letters,
        initial_s=cfg.retry.initial_s,
        max_s=cfg.retry.max_s,
        give_up=give_up,
    )
    intake = Intake(cfg.mqtt.topics, fleet, unknown_nodes=cfg.fleet.unknown_nodes)
    intake.usage.seed_from(store)

    def close() -> None:
        dead_letters.close()
        store.close()

    return LocalChecker(intake, writer), close


def _exit_when_orphaned(parent_pid: int) -> None:
    # A collector killed with SIGKILL cannot close the pipe in time for a child busy retrying a
    # store that is down; the child must not outlive it and keep writing on its own.
    while os.getppid() == parent_pid:
        threading.Event().wait(_ORPHAN_CHECK_S)
    os._exit(1)


__all__ = ["Checker", "LocalChecker", "Pending", "ProcessChecker", "serve"]
