"""A minimal CQL native-protocol (v4) client: STARTUP, QUERY and the Rows result.

Why keep a hand-written client when cassandra-driver is in the venv: the
runner is standard library only so that it works with any ``python3``, before
the venv exists or outside it (``make cassandra-stop`` runs with the system
python, where the driver is not installed).  The readiness probe
(:mod:`scripts.cassandra_runner.probe`) uses the driver whenever it can be
imported and falls back to this only then; :func:`cql_rows` is also kept for
callers that want raw values from one node without a driver.  It speaks just
enough of the protocol for that: no authentication, compression, paging,
prepared statements or value decoding.
"""

from __future__ import annotations

import socket
import struct

from scripts.cassandra_runner.state import NATIVE_PORT, CassandraError, address

_OP_ERROR, _OP_STARTUP, _OP_READY, _OP_QUERY, _OP_RESULT = 0x00, 0x01, 0x02, 0x07, 0x08
_CONSISTENCY_ONE = 0x0001
_RESULT_ROWS = 0x0002
_FLAG_GLOBAL_SPEC, _FLAG_HAS_MORE_PAGES, _FLAG_NO_METADATA = 0x0001, 0x0002, 0x0004


class _Reader:
    """Reads the protocol's [int], [short], [string], [bytes] and [option] off a frame body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        chunk = self.data[self.pos : self.pos + size]
        if len(chunk) != size:
            raise CassandraError("truncated CQL frame")
        self.pos += size
        return chunk

    def read_int(self) -> int:
        value: int = struct.unpack(">i", self.take(4))[0]
        return value

    def read_short(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value

    def read_string(self) -> str:
        return self.take(self.read_short()).decode()

    def read_bytes(self) -> bytes | None:
        size = self.read_int()
        return None if size < 0 else self.take(size)

    def read_option(self) -> None:
        """Skip a column type (custom, list/set, map, UDT, tuple nest other types)."""
        kind = self.read_short()
        if kind == 0x0000:
            self.read_string()
        elif kind in (0x0020, 0x0022):
            self.read_option()
        elif kind == 0x0021:
            self.read_option()
            self.read_option()
        elif kind == 0x0030:
            self.read_string()
            self.read_string()
            for _ in range(self.read_short()):
                self.read_string()
                self.read_option()
        elif kind == 0x0031:
            for _ in range(self.read_short()):
                self.read_option()


def _cql_string(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">H", len(data)) + data


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise CassandraError("connection closed by node")
        chunks += chunk
    return bytes(chunks)


def _exchange(sock: socket.socket, opcode: int, body: bytes) -> tuple[int, _Reader]:
    sock.sendall(struct.pack(">BBhBi", 0x04, 0, 0, opcode, len(body)) + body)
    _version, _flags, _stream, reply, length = struct.unpack(">BBhBi", _recv_exact(sock, 9))
    reader = _Reader(_recv_exact(sock, length))
    if reply == _OP_ERROR:
        code = reader.read_int()
        raise CassandraError(f"CQL error 0x{code:04x}: {reader.read_string()}")
    return reply, reader


def cql_rows(node: int, query: str, timeout: float = 10.0) -> list[list[bytes | None]]:
    """Run ``query`` at consistency ONE on ``node`` and return raw row values."""
    with socket.create_connection((address(node), NATIVE_PORT), timeout=timeout) as sock:
        startup = struct.pack(">H", 1) + _cql_string("CQL_VERSION") + _cql_string("3.0.0")
        reply, _ = _exchange(sock, _OP_STARTUP, startup)
        if reply != _OP_READY:
            raise CassandraError(f"unexpected reply 0x{reply:02x} to STARTUP")
        encoded = query.encode()
        body = struct.pack(">i", len(encoded)) + encoded + struct.pack(">HB", _CONSISTENCY_ONE, 0)
        reply, reader = _exchange(sock, _OP_QUERY, body)
    if reply != _OP_RESULT:
        raise CassandraError(f"unexpected reply 0x{reply:02x} to QUERY")
    if reader.read_int() != _RESULT_ROWS:
        return []
    flags, columns = reader.read_int(), reader.read_int()
    if flags & _FLAG_HAS_MORE_PAGES:
        reader.read_bytes()  # the paging state
    if not flags & _FLAG_NO_METADATA:
        if flags & _FLAG_GLOBAL_SPEC:
            reader.read_string()  # keyspace
            reader.read_string()  # table
        for _ in range(columns):
            if not flags & _FLAG_GLOBAL_SPEC:
                reader.read_string()
                reader.read_string()
            reader.read_string()  # column name
            reader.read_option()  # column type
    return [[reader.read_bytes() for _ in range(columns)] for _ in range(reader.read_int())]
