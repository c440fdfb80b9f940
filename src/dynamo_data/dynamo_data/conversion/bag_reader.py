"""Read the configured topics of one rosbag2 bag with `rosbags` (no ROS install needed).

Works on bag directories (metadata.yaml, split bags) and bare .mcap / .db3 files. Message types come
from the definitions stored in the bag (custom messages, service events recorded with their .srv
text); bags without stored definitions (older sqlite3 bags) fall back to the standard types of the
bag's ROS distribution. Topic names recorded without their leading '/' (rosbag2 before Humble) are
matched as if they had it.

Deliberately below rosbags' `Reader`/`AnyReader`: AnyReader refuses bags that hold service-event
topics, matching connections through metadata.yaml silently yields 0 messages when its QoS disagrees
with the storage file, and one damaged storage file makes the whole bag unreadable. Here each storage
file is opened on its own (errors name that file), only the storage connections of the configured
topics are read, matched by topic name, and an MCAP file rosbags cannot open is read as far as its
records are complete (mcap_recovery), with a warning that says what was lost.
"""
import shutil
import sqlite3
import struct
import tempfile
from pathlib import Path

import apsw
import yaml
from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import ReaderError
from rosbags.rosbag2.reader import zstd  # the zstd module rosbags itself decompresses with
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.base import TypesysError

from .mcap_recovery import McapDamage, RecoveredMcap

__all__ = ['BagError', 'BagFile', 'READ_ERRORS', 'normalize_topic']

HEADER_TYPE = 'std_msgs/msg/Header'
# What a truncated or corrupt storage file raises inside rosbags / sqlite3 (apsw) / zstd. MemoryError
# and OverflowError: rosbags trusts record lengths read from the file, so a damaged length asks for
# an impossible buffer.
READ_ERRORS = (ReaderError, sqlite3.Error, apsw.Error, struct.error, EOFError, OSError, ValueError, KeyError,
               IndexError, AssertionError, SerdeError, MemoryError, OverflowError, UnicodeDecodeError)
_STORAGES = {'.mcap': McapReader, '.db3': Sqlite3Reader}
_STORAGE_IDS = {'mcap': '.mcap', 'sqlite3': '.db3'}
_DEFINITION_SEPARATOR = '=' * 80 + '\n'
_TOO_SMALL = 64  # bytes: no storage file holding a message is this small


class BagError(Exception):
    """A bag that cannot be converted; the message names the bag (and topic/field)."""


def normalize_topic(name):
    """Return the topic name with its leading '/': rosbag2 before Humble recorded names without it."""
    return name if name.startswith('/') else '/' + name


def _distro_store(distro):
    return {'humble': Stores.ROS2_HUMBLE, 'iron': Stores.ROS2_IRON, 'jazzy': Stores.ROS2_JAZZY,
            'kilted': Stores.ROS2_KILTED}.get(str(distro or '').lower(), Stores.LATEST)


def _service_types(section, msgtype):
    """Types of a service-event topic whose stored definition is the .srv text (as rosbag2 records them).

    pkg/srv/Name_Event is {info, request[<=1], response[<=1]}; rosbags parses only pkg/msg/ names, so
    the request and response are registered as pkg/msg/Name_Request / _Response.
    """
    package, _, name = msgtype[:-len('_Event')].split('/')
    base = f'{package}/msg/{name}'
    request, _, response = section.partition('\n---')
    types = dict(get_types_from_msg(request, f'{base}_Request'))
    types.update(get_types_from_msg(response.lstrip('-'), f'{base}_Response'))
    event = get_types_from_msg(f'service_msgs/msg/ServiceEventInfo info\n{base}_Request[<=1] request\n'
                               f'{base}_Response[<=1] response\n', f'{base}_Event')
    types[msgtype] = event[f'{base}_Event']
    return types


def _types_from_definition(msgdef, msgtype):
    if msgdef.format == MessageDefinitionFormat.MSG:
        if not msgdef.data.startswith(_DEFINITION_SEPARATOR + 'SRV: ') and '\n---' not in msgdef.data:
            return get_types_from_msg(msgdef.data, msgtype)
        types = {}  # a service definition, then (maybe) the messages it uses, each after a separator
        for part in msgdef.data.split(_DEFINITION_SEPARATOR):
            head, _, body = part.partition('\n')
            if head.startswith('SRV: '):
                types.update(_service_types(body, msgtype))
            elif head.startswith('MSG: '):
                types.update(get_types_from_msg(body, head[5:].strip()))
            elif part.strip():
                types.update(_service_types(part, msgtype))
        return types
    types = {}
    if msgdef.data.startswith(f'{_DEFINITION_SEPARATOR}IDL: '):
        for part in msgdef.data.split(_DEFINITION_SEPARATOR)[1:]:
            types.update(get_types_from_idl(part.split('\n', 1)[1]))
    else:
        types.update(get_types_from_idl(msgdef.data))
    return types


class BagFile:
    """One opened bag: `topics` lists what is in it, `read(topics)` yields raw messages.

    `warnings` lists what was read around (the readable part of a damaged MCAP file).
    """

    def __init__(self, path):
        self.path = Path(path)
        self.name = str(path)
        self.warnings = []
        self._storages = []
        self._tmpdir = None
        if not self.path.exists():
            raise BagError(f'{self.name}: no such bag (directory with metadata.yaml, .mcap or .db3)')
        try:
            if self.path.is_dir():
                files, self._message_compressed, distro, self.counts = self._read_metadata()
            else:
                if self.path.suffix not in _STORAGES:
                    raise BagError(f'{self.name}: not a bag: expected a directory with metadata.yaml, '
                                   'a .mcap or a .db3 file')
                files, self._message_compressed, distro, self.counts = [self.path], None, None, {}
            for file in files:
                self._storages.append(self._open_storage(file))
            if not self.path.is_dir():
                metadata = self._storages[0].metadata if hasattr(self._storages[0], 'metadata') else None
                self._message_compressed = bool(metadata and metadata.compression_mode == 'message')
                distro = metadata.ros_distro if metadata else None
        except BaseException:
            self.close()
            raise
        self._distro = distro
        self.topics = {}  # topic (with its leading '/') -> msgtype
        storage_counts = {}
        for conn in self._connections():
            topic = normalize_topic(conn.topic)
            self.topics.setdefault(topic, conn.msgtype)
            storage_counts[topic] = storage_counts.get(topic, 0) + int(conn.msgcount or 0)
        self.counts = self.counts or storage_counts  # topic -> message count from the bag's index
        self.typestore = None

    def _read_metadata(self):
        """Storage files, message compression, ROS distro and per-topic counts from metadata.yaml."""
        meta_path = self.path / 'metadata.yaml'
        if not meta_path.exists():
            files = sorted(p.name for p in self.path.iterdir() if p.suffix in _STORAGES)
            raise BagError(f'{self.name}: directory has no metadata.yaml'
                           + (f" (pass the storage file instead: {', '.join(files)})" if files else ''))
        hint = 'restore it from the recording machine, or pass the storage file (.mcap/.db3) itself'
        try:
            info = yaml.safe_load(meta_path.read_bytes())['rosbag2_bagfile_information']
            storage = info['storage_identifier']
            names = [str(Path(str(p)).name) for p in info['relative_file_paths']]
            counts = {}
            for entry in info.get('topics_with_message_count') or []:
                topic = normalize_topic(str(entry['topic_metadata']['name']))
                counts[topic] = counts.get(topic, 0) + int(entry['message_count'])
            mode = str(info.get('compression_mode') or '').lower()
            distro = info.get('ros_distro')
        except (yaml.YAMLError, OSError, ValueError) as exc:
            raise BagError(f'{meta_path}: not readable as YAML ({type(exc).__name__}); {hint}') from None
        except KeyError as exc:
            raise BagError(f'{meta_path}: not a rosbag2 metadata file (key {exc} missing); {hint}') from None
        except (TypeError, AttributeError):
            raise BagError(f'{meta_path}: not a rosbag2 metadata file (not the mapping rosbag2 writes); {hint}') \
                from None
        if storage not in _STORAGE_IDS:
            raise BagError(f'{meta_path}: storage_identifier {storage!r} is not supported (mcap, sqlite3)')
        files = [self.path / n for n in names]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise BagError(f"{meta_path}: lists storage file(s) that do not exist: {', '.join(missing)}")
        if mode == 'file':  # every storage file zstd-compressed as a whole: decompress beside us
            self._tmpdir = tempfile.mkdtemp(prefix='dynamo_bag_')
            for i, file in enumerate(files):
                target = Path(self._tmpdir) / file.stem
                try:
                    with open(file, 'rb') as raw, zstd.open(raw, 'rb') as src, open(target, 'wb') as dst:
                        shutil.copyfileobj(src, dst)
                except (OSError, zstd.ZstdError) as exc:
                    raise BagError(f'{file}: cannot decompress (truncated or corrupt?): {exc}') from None
                files[i] = target
        return files, mode == 'message', distro, counts

    def _open_storage(self, file):
        size = file.stat().st_size
        what = 'an MCAP file' if file.suffix == '.mcap' else 'a sqlite3 database'
        if size < _TOO_SMALL:
            raise BagError(f'{file}: only {size} bytes, not {what} with messages (the recording stopped before '
                           'writing any?); re-record it, or leave it out (--skip-bad)')
        storage = _STORAGES[file.suffix](file)
        try:
            storage.open()
            return storage
        except READ_ERRORS as exc:
            error = f'{type(exc).__name__}: {exc}'
        if file.suffix != '.mcap':
            raise BagError(f'{file}: cannot open {what} (truncated or corrupt?): {error}; '
                           'leave the bag out (--skip-bad) or repair it (sqlite3 .recover)')
        try:
            recovered = RecoveredMcap(file)
        except (McapDamage, OSError) as exc:
            raise BagError(f'{file}: cannot open (truncated or corrupt?): {exc}; leave the bag out (--skip-bad)') \
                from None
        messages = sum(c.msgcount for c in recovered.connections)
        if not messages:
            recovered.close()
            where = f' before byte {recovered.lost[0]}' if recovered.lost else ''
            raise BagError(f'{file}: cannot open (truncated or corrupt?): {error}; no complete message{where} to '
                           'recover; leave the bag out (--skip-bad)')
        if recovered.lost is None:
            self.warnings.append(f'{file}: MCAP index unreadable ({error}); all {messages} messages read from '
                                 'the data section')
        else:
            offset, record = recovered.lost
            until = f' up to t={recovered.last_time / 1e9:.3f} s' if recovered.last_time is not None else ''
            self.warnings.append(
                f'{file}: incomplete MCAP file (recording cut off?): recovered {messages} messages in '
                f'{recovered.chunks_read} complete chunk(s){until}; the last {size - offset} bytes (from an '
                f'incomplete {record} at byte {offset}) are lost')
        return recovered

    def _connections(self):
        return [c for s in self._storages for c in s.connections]

    def close(self):
        for storage in self._storages:
            try:
                storage.close()
            except Exception:  # noqa: BLE001 - a damaged storage may fail to close; nothing to keep
                pass
        self._storages = []
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

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
        """Return a typestore with the bag's own definitions of the given topics' types (custom types work)."""
        types = {}
        wanted = {self.topics[t] for t in topics}
        missing = set(wanted)
        for conn in self._connections():
            if conn.msgtype in missing and conn.msgdef.format != MessageDefinitionFormat.NONE:
                try:
                    types.update(_types_from_definition(conn.msgdef, conn.msgtype))
                except (TypesysError, ValueError, IndexError) as exc:
                    raise BagError(f'{self.name}: topic {normalize_topic(conn.topic)}: cannot parse the stored '
                                   f'definition of {conn.msgtype}: {exc}') from None
                missing.discard(conn.msgtype)
        if missing:  # no stored definitions (e.g. sqlite3 bags recorded before Iron)
            default = get_typestore(_distro_store(self._distro))
            unknown = sorted(m for m in missing if m not in default.fielddefs)
            if unknown:
                raise BagError(f"{self.name}: type(s) {', '.join(unknown)} have no definition in the bag and are "
                               "not standard ROS 2 types")
            types.update({k: v for k, v in default.fielddefs.items() if k not in types})
        elif any('/srv/' in t for t in wanted):  # service events use service_msgs/ServiceEventInfo
            default = get_typestore(_distro_store(self._distro))
            types.update({k: v for k, v in default.fielddefs.items() if k.startswith(('service_msgs/',
                                                                                      'builtin_interfaces/'))
                          and k not in types})
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
        for storage in self._storages:
            conns = [c for c in storage.connections if normalize_topic(c.topic) in topics]
            if not conns:
                continue
            try:
                for conn, timestamp, data in storage.messages(conns):
                    if self._message_compressed:
                        data = zstd.decompress(data)
                    yield normalize_topic(conn.topic), timestamp, data
            except (*READ_ERRORS, McapDamage) as exc:
                raise BagError(f'{storage.path}: error while reading messages (truncated or corrupt?): '
                               f'{type(exc).__name__}: {exc}; leave the bag out (--skip-bad)') from None


def header_stamp_ns(data):
    """Return (header.stamp in ns, whether nanosec is in range) of a CDR message that starts with a Header.

    Read without deserialising; struct.error when the message is too short to hold one.
    """
    sec, nanosec = struct.unpack_from('<iI' if data[1] == 1 else '>iI', data, 4)
    return sec * 1_000_000_000 + nanosec, nanosec < 1_000_000_000


def image_header(data):
    """(height, width, encoding) of a CDR sensor_msgs/Image without touching its pixels."""
    endian = '<' if data[1] == 1 else '>'
    (frame_id_len,) = struct.unpack_from(endian + 'I', data, 12)
    pos = 16 + frame_id_len
    pos += -(pos - 4) % 4  # CDR aligns relative to the payload (after the 4-byte encapsulation)
    height, width, enc_len = struct.unpack_from(endian + 'III', data, pos)
    encoding = bytes(data[pos + 12:pos + 12 + enc_len - 1]).decode('ascii', 'replace')
    return height, width, encoding
