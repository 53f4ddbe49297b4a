"""Read, decode and prepare a replay's examples in a child process while this one learns.

Learning is the replay's one inherently serial step: an example can only be learned
after the one before it. Reading and decoding are not, and at about 25 µs per example
decoding costs nearly as much as learning (about 30 µs), so a replay that does both in
one process runs at little more than half the speed of learning alone. On a machine with
a second core, a child process forked for the purpose reads the ranges, decodes them
with :func:`~streamlearn.replay.examples.decoded_examples` and prepares them for the
learner with :func:`~streamlearn.models.online.prepared_example` (the very code the serial
path runs, so what is skipped and counted is the same, and the River input is built
there, not here), and hands them over in batches through a pipe while this process learns
the previous batch.

The hand-over is plain data: each batch is ``marshal``-ed ``(prepared, partition, offset)``
tuples of strings, numbers, None, tuples and dicts (no timestamp crosses: the learner
reads none), which ``marshal`` rebuilds without running any code. An exception raised in
the child crosses as its type's name, message and traceback text: the replay's own errors
are raised again as the same type (:data:`_REBUILT`), any other as a
:class:`ReadAheadError` that names it. Nothing is
ever unpickled.

The pipe holds at most :data:`PIPE_BYTES` (a few thousand examples): however slow the
learner, the child is no further ahead than that, so memory stays bounded.

Fork safety: the child is forked before this process creates any Kafka client of its
own for the replay, creates its own consumer, never touches an object it inherited
beyond the source and serde (whose registry client it may ask for a writer schema while
this process waits on the pipe), freezes the garbage collector so that nothing inherited
(a parent's librdkafka handle in particular) is ever finalised in the child, and leaves
with :func:`os._exit` (no atexit handlers, no flushing of stdio buffers it inherited).
"""

from __future__ import annotations

import gc
import marshal
import os
import signal
import traceback
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import NoReturn

from streamlearn.replay.examples import (
    PreparedRecord,
    ReadCounts,
    decoded_examples,
    prepared_records,
)
from streamlearn.replay.exceptions import PastRetentionError, ReplayError
from streamlearn.replay.positions import PartitionRange
from streamlearn.replay.sources import KafkaSource, RecordSource
from streamlearn.serde import AvroSerde

BATCH_RECORDS = 256
"""Records per hand-over: small enough that learning starts at once, large enough that
the pipe costs nothing per record."""
FIRST_BATCH_RECORDS = 16
PIPE_BYTES = 1 << 20
"""What the pipe between the processes holds: about 3,000 examples (bounds memory)."""
MIN_RECORDS = 2_000
"""Below this, forking (a few ms) is not worth it: read in this process."""

_MORE, _LAST, _FAILED = 0, 1, 2


class ReadAheadError(ReplayError):
    """The child process failed with an exception that is not one of the replay's own."""


_REBUILT: dict[str, type[ReplayError]] = {
    f"{cls.__module__}.{cls.__qualname__}": cls
    for cls in (ReplayError, PastRetentionError, ReadAheadError)
}
"""The exception types the child's failure is raised again as (built from the message)."""


def read_ahead_available() -> bool:
    """Whether this platform can fork (POSIX)."""
    return hasattr(os, "fork")


def worth_reading_ahead(source: RecordSource, ranges: Iterable[PartitionRange]) -> bool:
    """Whether :func:`read_ahead` forks for ``ranges`` of ``source``: Kafka only (the
    archive's readers keep thread pools of their own), and enough records."""
    return (
        read_ahead_available()
        and isinstance(source, KafkaSource)
        and sum(r.count for r in ranges) >= MIN_RECORDS
    )


@contextmanager
def read_ahead(
    source: RecordSource,
    serde: AvroSerde,
    topic: str,
    ranges: Iterable[PartitionRange],
    counts: ReadCounts,
    *,
    fork: bool | None = None,
    batch: int = BATCH_RECORDS,
) -> Iterator[Iterator[PreparedRecord]]:
    """The examples :func:`decoded_examples` gives (same order, same ``counts``), prepared
    for the learner (:func:`prepared_records`): read, decoded and prepared in a child
    process forked on entering (``fork`` None: when :func:`worth_reading_ahead`), else in
    this process. Leaving stops the child."""
    ranges = list(ranges)
    if fork is None:
        fork = worth_reading_ahead(source, ranges)
    if not fork:
        yield prepared_records(decoded_examples(source, serde, topic, ranges, counts))
        return
    receiver, sender = Pipe(duplex=False)
    _widen(sender)
    with warnings.catch_warnings():
        # Python 3.12+ warns on forking with threads; the child touches nothing they own.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its effects are asserted by the parent
        receiver.close()
        _child(sender, source, serde, topic, ranges, batch)
    sender.close()
    finished = False
    try:

        def received() -> Iterator[PreparedRecord]:
            nonlocal finished
            while True:
                try:
                    message = receiver.recv_bytes()
                except EOFError:
                    status = _exit_status(pid)
                    raise ReadAheadError(
                        f"the process reading {topic} ended without finishing ({status})"
                    ) from None
                # Plain data from our own child (marshal builds no objects but data).
                kind, *rest = marshal.loads(message)  # noqa: S302
                if kind == _FAILED:
                    raise _exception(topic, *rest)
                read, undecodable, examples = rest
                counts.read += read
                counts.undecodable += undecodable
                yield from examples
                if kind == _LAST:
                    finished = True
                    return

        yield received()
    finally:
        receiver.close()
        if not finished:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _widen(pipe: Connection) -> None:
    """Let the pipe hold a few whole batches (Linux: 64 KiB by default, a quarter of one):
    the child then writes a batch without waiting for this process to read, and this
    process reads it in one go."""
    with suppress(ImportError, AttributeError, OSError):  # not Linux, or over the limit
        import fcntl

        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _child(
    out: Connection,
    source: RecordSource,
    serde: AvroSerde,
    topic: str,
    ranges: list[PartitionRange],
    batch: int,
) -> NoReturn:  # pragma: no cover - runs in the forked child
    code = 0
    counts, sent = ReadCounts(), ReadCounts()
    examples: list[PreparedRecord] = []
    try:
        gc.freeze()  # nothing inherited is ever collected (finalised) here
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops us
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        size = min(FIRST_BATCH_RECORDS, batch)  # the learner starts at once, then batches grow
        for example in prepared_records(decoded_examples(source, serde, topic, ranges, counts)):
            examples.append(example)
            if counts.read - sent.read >= size:
                _send(out, _MORE, counts, sent, examples)
                examples = []
                size = min(size * 2, batch)
        _send(out, _LAST, counts, sent, examples)
    except BrokenPipeError:
        code = 1  # the parent stopped reading
    except BaseException as exc:
        code = 1
        with suppress(BaseException):
            # What was read before the failure is learned before it is raised, as in-process.
            if examples:
                _send(out, _MORE, counts, sent, examples)
        with suppress(BaseException):
            out.send_bytes(marshal.dumps((_FAILED, *_handed_over(exc))))
    finally:
        os._exit(code)


def _send(
    out: Connection,
    kind: int,
    counts: ReadCounts,
    sent: ReadCounts,
    examples: list[PreparedRecord],
) -> None:  # pragma: no cover - runs in the forked child
    read, undecodable = counts.read - sent.read, counts.undecodable - sent.undecodable
    try:
        message = marshal.dumps((kind, read, undecodable, examples))
    except ValueError as exc:
        raise ReadAheadError(
            f"prepared examples are handed over as plain data (marshal): {exc}"
        ) from exc
    out.send_bytes(message)
    sent.read, sent.undecodable = counts.read, counts.undecodable


def _handed_over(exc: BaseException) -> tuple[str, str, str]:
    """(its type's name, its message, its traceback text): plain strings."""
    described = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return described, str(exc), "".join(traceback.format_exception(exc))


def _exception(topic: str, described: str, message: str, text: str) -> BaseException:
    """The child's exception as this process raises it."""
    rebuilt = _REBUILT.get(described)
    if rebuilt is not None:
        exc = rebuilt(message)
        exc.add_note(f"raised in the process reading {topic}:\n{text}")
        return exc
    return ReadAheadError(f"reading {topic} failed: {described}: {text.strip()}")


def _exit_status(pid: int) -> str:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return "exit status unknown"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
