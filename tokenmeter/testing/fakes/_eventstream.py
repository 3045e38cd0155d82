"""AWS event-stream binary framing (``application/vnd.amazon.eventstream``).

A message is: a 12-byte prelude (total length, headers length, CRC32 of those
8 bytes), the headers, the payload, and a CRC32 of everything before it.  Only
string-valued headers (type 7) are written, which is all Bedrock Runtime uses.
"""

from __future__ import annotations

import binascii
import json
import struct
from collections.abc import Iterator, Mapping
from typing import Any

_STRING = 7
_PRELUDE = struct.Struct(">II")
_U32 = struct.Struct(">I")


def _crc(data: bytes) -> bytes:
    return _U32.pack(binascii.crc32(data) & 0xFFFFFFFF)


def frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """Encode one event-stream message."""
    encoded = b""
    for name, value in headers.items():
        key, val = name.encode(), value.encode()
        encoded += struct.pack("B", len(key)) + key + struct.pack(">BH", _STRING, len(val)) + val
    prelude = _PRELUDE.pack(12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + _crc(prelude) + encoded + payload
    return message + _crc(message)


def event(event_type: str, payload: Any) -> bytes:
    """A JSON ``event`` message of the given ``:event-type``."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, json.dumps(payload, separators=(",", ":")).encode())


def exception(exception_type: str, message: str) -> bytes:
    """An in-stream ``exception`` message (e.g. ``throttlingException``)."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return frame(headers, json.dumps({"message": message}).encode())


def decode(data: bytes) -> Iterator[tuple[dict[str, str], bytes]]:
    """Decode concatenated messages into (headers, payload), checking both CRCs."""
    offset = 0
    while offset < len(data):
        total, headers_len = _PRELUDE.unpack_from(data, offset)
        message = data[offset : offset + total]
        if len(message) != total or message[8:12] != _crc(message[:8]) or message[-4:] != _crc(message[:-4]):
            raise ValueError(f"corrupt event-stream message at byte {offset}")
        headers: dict[str, str] = {}
        pos, end = 12, 12 + headers_len
        while pos < end:
            key_len = message[pos]
            key = message[pos + 1 : pos + 1 + key_len].decode()
            pos += 1 + key_len
            kind, val_len = struct.unpack_from(">BH", message, pos)
            if kind != _STRING:
                raise ValueError(f"unsupported header type {kind}")
            headers[key] = message[pos + 3 : pos + 3 + val_len].decode()
            pos += 3 + val_len
        yield headers, message[end:-4]
        offset += total
