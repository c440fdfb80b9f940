"""Read what is readable of a damaged MCAP file by walking its data section, as `mcap recover` does.

rosbags needs an MCAP file's summary section (written last) to read it: a recording cut off before
closing, or a file whose summary is damaged, is unreadable there. The data section holds the same
schemas, channels and messages record by record, so every record that is complete is read here and
the rest is reported. Chunks whose CRC is set are checked: a mismatch is corruption, not truncation,
and raises. Records are read with bounds checks against the file size, so damaged lengths never turn
into huge allocations.
"""
import mmap
import struct
from binascii import crc32
from collections import Counter

from rosbags.interfaces import Connection, ConnectionExtRosbag2, MessageDefinition, MessageDefinitionFormat
from rosbags.rosbag2.reader import zstd  # the zstd module rosbags itself decompresses with

__all__ = ['McapDamage', 'RecoveredMcap']

_MAGIC = b'\x89MCAP0\r\n'
_OP_NAMES = {0x01: 'header', 0x02: 'footer', 0x03: 'schema', 0x04: 'channel', 0x05: 'message', 0x06: 'chunk',
             0x07: 'message index', 0x08: 'chunk index', 0x09: 'attachment', 0x0A: 'attachment index',
             0x0B: 'statistics', 0x0C: 'metadata', 0x0D: 'metadata index', 0x0E: 'summary offset', 0x0F: 'data end'}
_FORMATS = {'ros2msg': MessageDefinitionFormat.MSG, 'ros2idl': MessageDefinitionFormat.IDL,
            'omgidl': MessageDefinitionFormat.IDL}


class McapDamage(ValueError):
    """A record that is complete but wrong (CRC mismatch, undecodable chunk): the file is corrupt."""


def _string(buf, pos):
    (size,) = struct.unpack_from('<I', buf, pos)
    end = pos + 4 + size
    if end > len(buf):
        raise struct.error('string runs past its record')
    return bytes(buf[pos + 4:end]).decode('utf-8'), end


def _decompress(compression, data, size):
    if compression == '':
        return bytes(data)
    if compression == 'zstd':
        return zstd.decompress(data)
    if compression == 'lz4':
        from lz4.frame import decompress

        return decompress(data)
    raise McapDamage(f'unsupported chunk compression {compression!r}')


class RecoveredMcap:
    """The complete records of one MCAP file: `connections` like a rosbags storage, `messages(conns)`.

    `lost` says what could not be read: None when the data section ended properly, else the byte
    offset where the first incomplete or unreadable record starts and what it was.
    """

    def __init__(self, path):
        self.path = path
        self._file = open(path, 'rb')  # noqa: SIM115 - closed in close()
        try:
            self._buf = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            self._buf = b''
        self.connections = []
        self.lost = None
        self.chunks_read = 0
        self.last_time = None
        self._schemas = {}
        self._channel_ids = set()
        self._counts = Counter()
        # (opcode, body start, body end) of the chunks and loose messages in file order; opcode None:
        # the complete records salvaged from a cut-off chunk
        self._data = []
        self._scan()
        self.connections = [c._replace(msgcount=self._counts[c.id]) for c in self.connections]

    def close(self):
        if isinstance(self._buf, mmap.mmap):
            self._buf.close()
        self._file.close()

    def _records(self, buf, start, end, top_level):
        """Yield (opcode, body start, body end) of the records in buf[start:end]; sets `lost` at the top level."""
        pos = start
        while pos < end:
            if pos + 9 > end:
                if top_level:
                    self.lost = (pos, 'record header')
                return
            op, length = struct.unpack_from('<BQ', buf, pos)
            body_end = pos + 9 + length
            if op not in _OP_NAMES or body_end > end:
                if top_level:
                    self.lost = (pos, _OP_NAMES.get(op, f'unknown record 0x{op:02x}'))
                return
            if top_level and op in (0x0F, 0x02):  # data end / footer: the data section is complete
                return
            yield op, pos + 9, body_end
            pos = body_end
        if top_level:
            self.lost = (pos, 'data end record')

    def _scan(self):
        buf = self._buf
        if len(buf) < len(_MAGIC) or buf[:len(_MAGIC)] != _MAGIC:
            raise McapDamage('not an MCAP file (no MCAP magic at the start)')
        for op, body, end in self._records(buf, len(_MAGIC), len(buf), top_level=True):
            try:
                if op == 0x06:
                    records = self._chunk_records(body, end)
                    for inner_op, inner_body, inner_end in self._records(records, 0, len(records), top_level=False):
                        self._record(records, inner_op, inner_body, inner_end)
                    self.chunks_read += 1
                else:
                    self._record(buf, op, body, end)
                if op in (0x05, 0x06):
                    self._data.append((op, body, end))
            except (struct.error, UnicodeDecodeError) as exc:
                raise McapDamage(f'{_OP_NAMES[op]} record at byte {body - 9} is malformed ({exc})') from None
        if self.lost is not None and self.lost[1] == 'chunk':
            self._salvage_chunk(self.lost[0])

    def _salvage_chunk(self, offset):
        """Read the complete records at the start of a cut-off uncompressed chunk (its CRC cannot be checked)."""
        buf = self._buf
        try:
            compression, pos = _string(buf, offset + 9 + 28)
            (compressed_size,) = struct.unpack_from('<Q', buf, pos)
        except (struct.error, UnicodeDecodeError):
            return
        if compression != '':
            return  # a cut compressed stream cannot be decoded
        start, end = pos + 8, min(len(buf), pos + 8 + compressed_size)
        complete = start
        try:
            for op, body, stop in self._records(buf, start, end, top_level=False):
                self._record(buf, op, body, stop)
                complete = stop
        except (struct.error, UnicodeDecodeError):
            pass
        if complete > start:
            self._data.append((None, start, complete))
            self.lost = (complete, 'record in the last chunk')

    def _chunk_records(self, body, end):
        buf = self._buf
        _, _, size, crc = struct.unpack_from('<QQQI', buf, body)
        compression, pos = _string(buf, body + 28)
        (compressed_size,) = struct.unpack_from('<Q', buf, pos)
        data = buf[pos + 8:pos + 8 + compressed_size]
        if pos + 8 + compressed_size > end:
            raise McapDamage(f'chunk at byte {body - 9} claims more data than its record holds')
        try:
            records = _decompress(compression, data, size)
        except McapDamage:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure on a complete chunk is corruption
            raise McapDamage(f'chunk at byte {body - 9} cannot be decompressed ({exc})') from None
        if len(records) != size:
            raise McapDamage(f'chunk at byte {body - 9} decompresses to {len(records)} bytes, not {size}')
        if crc and crc32(records) != crc:
            raise McapDamage(f'chunk at byte {body - 9} fails its CRC check: its contents are corrupt')
        return records

    def _record(self, buf, op, body, end):
        if op == 0x03:
            (schema_id,) = struct.unpack_from('<H', buf, body)
            name, pos = _string(buf, body + 2)
            encoding, pos = _string(buf, pos)
            (size,) = struct.unpack_from('<I', buf, pos)
            data = bytes(buf[pos + 4:pos + 4 + size]).decode('utf-8')
            self._schemas[schema_id] = (name, encoding, data)
        elif op == 0x04:
            channel_id, schema_id = struct.unpack_from('<HH', buf, body)
            topic, pos = _string(buf, body + 4)
            encoding, _ = _string(buf, pos)
            if channel_id not in self._channel_ids:
                name, fmt, data = self._schemas.get(schema_id, ('', '', ''))
                msgdef = MessageDefinition(_FORMATS.get(fmt, MessageDefinitionFormat.NONE), data)
                self.connections.append(Connection(channel_id, topic, name, msgdef, '', 0,
                                                   ConnectionExtRosbag2(encoding, []), self))
                self._channel_ids.add(channel_id)
        elif op == 0x05:
            channel_id, _, log_time = struct.unpack_from('<HIQ', buf, body)
            self._counts[channel_id] += 1
            self.last_time = log_time if self.last_time is None else max(self.last_time, log_time)

    def messages(self, connections):
        """Yield (connection, log time ns, raw data) of the given connections in file order."""
        wanted = {c.id: c for c in connections}
        for op, body, end in self._data:
            if op == 0x05:
                buf, records = self._buf, [(op, body, end)]
            elif op is None:  # the complete records of a cut-off chunk
                buf, records = self._buf, self._records(self._buf, body, end, top_level=False)
            else:
                buf = self._chunk_records(body, end)
                records = self._records(buf, 0, len(buf), top_level=False)
            for inner_op, start, stop in records:
                if inner_op != 0x05:
                    continue
                channel_id, _, log_time = struct.unpack_from('<HIQ', buf, start)
                if channel_id in wanted:
                    yield wanted[channel_id], log_time, bytes(buf[start + 22:stop])
