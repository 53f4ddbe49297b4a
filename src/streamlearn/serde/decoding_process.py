"""Decode records in a second process while this one handles the records before them.

An agent has one interpreter. Where handling a record is mostly pure Python (the learner:
~32 µs to score and learn an example), decoding it (~5 µs for a ``TrainingExample``)
is time the step cannot use, while a second core sits idle. A :class:`DecodingProcess`
is a child interpreter that decodes with the very decoder
:class:`~streamlearn.serde.avro.AvroSerde` compiles (:class:`~streamlearn.serde.avro.DecodingPlan`)
and hands the records back as ``marshal`` data, which costs the parent about a fifth of
decoding them (``marshal.loads`` builds the dicts without running any code).

What crosses:

- at start, the plans (schema as JSON, fields kept, writer schema ids), one per input, each
  with the name of the input's *preparation* if the step has one (see below);
- then, per chunk of records, ``(input, [value bytes or None, ...])``; the child answers
  ``[record or None, ...]`` in the same order. None means "not decoded here": a value
  that is not framed Avro of a compiled schema id, or that the compiled decoder declined.
  The parent decodes those itself with the serde, so every fallback to fastavro and every
  error (a rejection naming its reason) is exactly what it always was.

A preparation (``Step.input_preparations``) is a function of a decoded record that the
step would otherwise run first thing on every record, in its own interpreter (the learner:
what learning reads of a ``TrainingExample``, ~2.5 µs). The child runs it after decoding
and answers its result instead of the record; the parent runs the same function on what it
decodes itself, so the step gets the same values either way. It is named
(``package.module:function``) and imported by the child, because no code crosses the pipe;
a record it raises on is answered None, and the parent's own attempt raises the same error
where it always would.

Frames are a 4-byte big-endian length and a ``marshal`` payload, over the child's
stdin and stdout. Nothing is ever unpickled: ``marshal`` reads only plain data (dicts,
lists, strings, numbers, bytes, None), and only from the other end of our own pipe.
The child reads its stdin in a thread of its own, so it always drains what the parent
writes, and the parent never blocks writing while the child waits for its answer to be
read: no deadlock whatever the sizes. The child is a fresh interpreter started with
``subprocess`` (fork + exec: safe in a process that already runs threads), it ignores
SIGINT (a terminal's Ctrl-C is for the agent, which stops it by closing its stdin) and it
leaves when its stdin closes, that is when the parent closes it or dies. It holds no
secret: it gets none of the agent's settings, only what starting Python needs
(:data:`CHILD_ENVIRONMENT`).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import marshal
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from streamlearn.serde.avro import DecodingPlan
from streamlearn.serde.compiled import Decoder
from streamlearn.serde.wire import HEADER_SIZE, framed_schema_id

_LENGTH = struct.Struct(">I")
ANSWER_TIMEOUT_S = 30.0
"""How long the parent waits for a chunk's records before it decodes them itself."""


CHILD_ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")
"""What the child inherits of the agent's environment: enough to start this interpreter
on the same code, none of the settings (the signing key, Kafka passwords)."""


Preparation = Callable[[Any], Any]
"""A decoded record → what the step reads of it (plain data: ``marshal`` carries it)."""


def import_preparation(path: str) -> Preparation:
    """The function ``path`` names (``package.module:function``)."""
    module_name, colon, attribute = path.partition(":")
    if not (colon and module_name and attribute):
        raise ValueError(f"preparation {path!r} is not 'package.module:function'")
    function = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(function):
        raise ValueError(f"preparation {path!r} is not a function")
    return function  # type: ignore[no-any-return]


def _child_environment() -> dict[str, str]:
    return {name: os.environ[name] for name in CHILD_ENVIRONMENT if name in os.environ}


class DecodingProcessError(Exception):
    """The child is gone, or did not answer in time."""


class DecodingProcess:
    """The parent's end: :meth:`submit` chunks, then take their records in order with
    :meth:`result`."""

    def __init__(
        self,
        plans: Mapping[str, DecodingPlan],
        *,
        preparations: Mapping[str, str] | None = None,
        timeout_s: float = ANSWER_TIMEOUT_S,
    ) -> None:
        """``plans``: per input, how to decode it; ``preparations``: per input, the name of
        the function the child runs on each record it decodes (:func:`import_preparation`)."""
        self._timeout_s = timeout_s
        self._closed = False
        self._child = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
            env=_child_environment(),
        )
        assert self._child.stdin is not None
        assert self._child.stdout is not None
        self._to_child = self._child.stdin.fileno()
        # Never blocked for good on a child that stopped reading: writes wait with a timeout.
        os.set_blocking(self._to_child, False)
        self._from_child = self._child.stdout.fileno()
        self._buffer = bytearray()
        self._pending = 0
        preparations = preparations or {}
        description = {
            key: (json.dumps(plan.schema), plan.fields, plan.schema_ids, preparations.get(key))
            for key, plan in plans.items()
        }
        self._write(marshal.dumps(description))

    @property
    def pid(self) -> int:
        return self._child.pid

    def submit(self, key: str, values: Sequence[bytes | None]) -> None:
        """Ask for the records of ``values`` (read from the input ``key``)."""
        self._write(marshal.dumps((key, list(values))))
        self._pending += 1

    def result(self) -> list[Any]:
        """The records of the oldest chunk not yet taken: each a dict, or None where
        the caller must decode the value itself."""
        if self._pending == 0:
            raise DecodingProcessError("no chunk was submitted")
        payload = self._read_frame()
        self._pending -= 1
        records: list[Any] = marshal.loads(payload)  # noqa: S302 - our child's plain data
        return records

    def discard_pending(self) -> None:
        """Read and drop the answers to chunks their caller gave up on (it raised
        between submitting and taking them), so the next result is the next chunk's."""
        while self._pending:
            self.result()

    def close(self) -> None:
        """Close the child's stdin (it leaves) and wait for it."""
        if self._closed:
            return
        self._closed = True
        if self._child.stdin is not None:
            with contextlib.suppress(OSError):
                self._child.stdin.close()
        try:
            self._child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        if self._child.stdout is not None:
            self._child.stdout.close()

    def _write(self, payload: bytes) -> None:
        if self._closed:  # its descriptors' numbers may be another file's by now
            raise DecodingProcessError("the decoding process was closed")
        data = memoryview(_LENGTH.pack(len(payload)) + payload)
        while data:
            _, ready, _ = select.select([], [self._to_child], [], self._timeout_s)
            if not ready:
                raise DecodingProcessError(f"it has read nothing for {self._timeout_s:g} s")
            try:
                data = data[os.write(self._to_child, data) :]
            except BlockingIOError:  # less room than select promised: wait again
                continue
            except (OSError, ValueError) as exc:  # the child is gone, or closed
                raise DecodingProcessError(f"the decoding process is gone: {exc}") from exc

    def _read_frame(self) -> bytes:
        if self._closed:
            raise DecodingProcessError("the decoding process was closed")
        length = _LENGTH.unpack(self._read_exactly(_LENGTH.size))[0]
        return self._read_exactly(length)

    def _read_exactly(self, count: int) -> bytes:
        buffer = self._buffer
        while len(buffer) < count:
            ready, _, _ = select.select([self._from_child], [], [], self._timeout_s)
            if not ready:
                raise DecodingProcessError(f"no answer in {self._timeout_s:g} s")
            chunk = os.read(self._from_child, max(count - len(buffer), 1 << 16))
            if not chunk:
                raise DecodingProcessError(
                    f"the decoding process left (exit status {self._child.poll()})"
                )
            buffer += chunk
        taken = bytes(buffer[:count])
        del buffer[:count]
        return taken


# -- the child -----------------------------------------------------------------------------


def _read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame's payload; None at the end of the stream."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(header)
    payload = stream.read(length)
    return payload if len(payload) == length else None


def decode_chunk(
    decoders: Mapping[int, Decoder], values: Sequence[Any], prepare: Preparation | None = None
) -> list[Any]:
    """What the child answers for ``values``: each record its compiled decoder returns
    (through ``prepare``, when the input has a preparation), or None where the parent
    decides (not framed for a compiled id, declined, or the preparation raised)."""
    records: list[Any] = []
    append = records.append
    for value in values:
        decoder = decoders.get(framed_schema_id(value))  # type: ignore[arg-type]
        if decoder is None:
            append(None)
            continue
        try:
            record = decoder(value, HEADER_SIZE)
            append(record if prepare is None else prepare(record))
        except Exception:  # declined: the parent's serde decides, as AvroSerde.decode does
            append(None)
    return records


def child_main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    first = _read_frame(stdin)
    if first is None:
        return 0
    decoders: dict[str, dict[int, Decoder]] = {}
    prepares: dict[str, Preparation] = {}
    for key, (schema_json, fields, schema_ids, preparation) in marshal.loads(  # noqa: S302
        first
    ).items():
        decoder = DecodingPlan(json.loads(schema_json), fields, tuple(schema_ids)).decoder()
        decoders[key] = {} if decoder is None else dict.fromkeys(schema_ids, decoder)
        if preparation is not None:
            # One that cannot be imported here stops the child: the parent then decodes
            # (and prepares) alone, as after any failure of the child.
            prepares[key] = import_preparation(preparation)
    frames: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def read_all() -> None:
        while (frame := _read_frame(stdin)) is not None:
            frames.put(frame)
        frames.put(None)

    threading.Thread(target=read_all, name="stdin", daemon=True).start()
    while (frame := frames.get()) is not None:
        key, values = marshal.loads(frame)  # noqa: S302 - our parent's plain data
        # Plain decoders return what marshal carries; if not, this process fails and the
        # parent decodes alone.
        payload = marshal.dumps(decode_chunk(decoders.get(key, {}), values, prepares.get(key)))
        try:
            stdout.write(_LENGTH.pack(len(payload)))
            stdout.write(payload)
            stdout.flush()
        except BrokenPipeError:
            return 0
    return 0


if __name__ == "__main__":
    sys.exit(child_main())
