"""A Faust codec on :class:`AvroSerde`, so agents send and receive decoded records.

Use it as a topic's ``value_serializer``. Decoding failures raise the serde's typed
errors, which Faust reports as ``ValueDecodeError``; agents that must route poison
records to ``events.rejected`` (with partition and offset) read raw bytes instead and
call :meth:`AvroSerde.decode` themselves.
"""

from __future__ import annotations

from typing import Any

from faust.serializers.codecs import Codec

from streamlearn.serde.avro import AvroSerde


class AvroCodec(Codec):
    def __init__(self, serde: AvroSerde, **kwargs: Any) -> None:
        super().__init__(serde=serde, **kwargs)
        self.serde = serde

    def _dumps(self, obj: Any) -> bytes:
        return self.serde.encode(obj)

    def _loads(self, s: bytes) -> Any:
        return self.serde.decode(s)
