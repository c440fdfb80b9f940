"""Read the configured topics of one rosbag2 bag with `rosbags` (no ROS install needed).

Works on bag directories (metadata.yaml, split bags) and bare .mcap / .db3 files. Message types come
from the definitions stored in the bag (custom messages work); bags without stored definitions
(older sqlite3 bags) fall back to the standard types of the bag's ROS distribution.

Deliberately below `AnyReader`: AnyReader refuses bags that hold service-event topics, and matching
connections through metadata.yaml silently yields 0 messages when its QoS disagrees with the storage
file. Here only the storage connections of the configured topics are read, matched by topic name.
"""
import sqlite3
import struct
from pathlib import Path

from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import Reader, ReaderError
from rosbags.rosbag2.reader import zstd  # the zstd module rosbags itself decompresses with
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.base import TypesysError

__all__ = ['BagError', 'BagFile', 'READ_ERRORS']

HEADER_TYPE = 'std_msgs/msg/Header'
# What a truncated or corrupt storage file raises inside rosbags / sqlite3 / zstd.
READ_ERRORS = (ReaderError, sqlite3.Error, struct.error, EOFError, OSError, ValueError, KeyError, IndexError,
               AssertionError, SerdeError)


class BagError(Exception):
    """A bag that cannot be converted; the message names the bag (and topic/field)."""


def _distro_store(distro):
    return {'humble': Stores.ROS2_HUMBLE, 'iron': Stores.ROS2_IRON, 'jazzy': Stores.ROS2_JAZZY,
            'kilted': Stores.ROS2_KILTED}.get(str(distro or '').lower(), Stores.LATEST)


def _types_from_definition(msgdef, msgtype):
    if msgdef.format == MessageDefinitionFormat.MSG:
        return get_types_from_msg(msgdef.data, msgtype)
    sep = '=' * 80 + '\n'
    types = {}
    if msgdef.data.startswith(f'{sep}IDL: '):
        for part in msgdef.data.split(sep)[1:]:
            types.update(get_types_from_idl(part.split('\n', 1)[1]))
    else:
        types.update(get_types_from_idl(msgdef.data))
    return types


class BagFile:
    """One opened bag: `topics` lists what is in it, `read(topics)` yields raw messages."""

    def __init__(self, path):
        self.path = Path(path)
        self.name = str(path)
        if not self.path.exists():
            raise BagError(f'{self.name}: no such bag (directory with metadata.yaml, .mcap or .db3)')
        if self.path.is_dir() and not (self.path / 'metadata.yaml').exists():
            files = sorted(p.name for p in self.path.iterdir() if p.suffix in ('.mcap', '.db3'))
            raise BagError(f'{self.name}: directory has no metadata.yaml'
                           + (f" (pass the storage file instead: {', '.join(files)})" if files else ''))
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except BagError:
            raise
        except READ_ERRORS as exc:
            raise BagError(f'{self.name}: cannot open bag (truncated or corrupt?): {exc}') from None
        storage = self._reader.storage
        # A directory bag holds one storage reader per split file; a bare file is its own storage.
        self._storages = getattr(storage, 'storages', None) or [storage]
        self._message_compressed = self._reader.compression_mode == 'message'
        self.topics = {}  # topic -> msgtype
        self.counts = {}  # topic -> message count from the bag's index
        for conn in self._reader.connections:
            self.topics.setdefault(conn.topic, conn.msgtype)
            self.counts[conn.topic] = self.counts.get(conn.topic, 0) + int(conn.msgcount or 0)
        self.typestore = None

    def close(self):
        if self._reader.is_open:
            self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def topic_listing(self):
        return ', '.join(f'{t} [{m}]' for t, m in sorted(self.topics.items())) or 'no topics'

    def require(self, topic, what):
        if topic not in self.topics:
            raise BagError(f'{self.name}: {what} topic {topic} is not in the bag; it has: {self.topic_listing()}')
        return self.topics[topic]

    def build_typestore(self, topics):
        """Typestore with the bag's own definitions of the given topics' types (custom types work)."""
        types = {}
        wanted = {self.topics[t] for t in topics}
        missing = set(wanted)
        for conn in [c for s in self._storages for c in s.connections] + list(self._reader.connections):
            if conn.msgtype in missing and conn.msgdef.format != MessageDefinitionFormat.NONE:
                try:
                    types.update(_types_from_definition(conn.msgdef, conn.msgtype))
                except (TypesysError, ValueError, IndexError) as exc:
                    raise BagError(f'{self.name}: topic {conn.topic}: cannot parse the stored definition of '
                                   f'{conn.msgtype}: {exc}') from None
                missing.discard(conn.msgtype)
        if missing:  # no stored definitions (e.g. sqlite3 bags recorded before Iron)
            default = get_typestore(_distro_store(self._reader.ros_distro))
            unknown = sorted(m for m in missing if m not in default.fielddefs)
            if unknown:
                raise BagError(f"{self.name}: type(s) {', '.join(unknown)} have no definition in the bag and are "
                               "not standard ROS 2 types")
            types.update({k: v for k, v in default.fielddefs.items() if k not in types})
        store = get_typestore(Stores.EMPTY)
        try:
            store.register(types)
        except TypesysError as exc:
            raise BagError(f'{self.name}: inconsistent message definitions: {exc}') from None
        self.typestore = store
        return store

    def has_header(self, msgtype):
        fields = self.typestore.fielddefs[msgtype][1]
        return bool(fields) and fields[0][1][1] == HEADER_TYPE

    def read(self, topics):
        """Yield (topic, receive time ns, raw CDR bytes) of the given topics, storage by storage."""
        topics = set(topics)
        try:
            for storage in self._storages:
                conns = [c for c in storage.connections if c.topic in topics]
                if not conns:
                    continue
                for conn, timestamp, data in storage.messages(conns):
                    if self._message_compressed:
                        data = zstd.decompress(data)
                    yield conn.topic, timestamp, data
        except READ_ERRORS as exc:
            raise BagError(f'{self.name}: error while reading messages (truncated or corrupt?): '
                           f'{type(exc).__name__}: {exc}') from None


def header_stamp_ns(data):
    """header.stamp of a CDR message whose first field is std_msgs/Header, without deserialising."""
    sec, nanosec = struct.unpack_from('<iI' if data[1] == 1 else '>iI', data, 4)
    return sec * 1_000_000_000 + nanosec


def image_header(data):
    """(height, width, encoding) of a CDR sensor_msgs/Image without touching its pixels."""
    endian = '<' if data[1] == 1 else '>'
    (frame_id_len,) = struct.unpack_from(endian + 'I', data, 12)
    pos = 16 + frame_id_len
    pos += -(pos - 4) % 4  # CDR aligns relative to the payload (after the 4-byte encapsulation)
    height, width, enc_len = struct.unpack_from(endian + 'III', data, pos)
    encoding = bytes(data[pos + 12:pos + 12 + enc_len - 1]).decode('ascii', 'replace')
    return height, width, encoding
