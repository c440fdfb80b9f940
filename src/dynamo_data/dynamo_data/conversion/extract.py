"""Turn deserialised messages into feature vectors and camera frames.

Each extractor returns (element names, float64 vector); names are fixed for a topic, so a message
whose layout changes (e.g. a joint disappears) is an error naming the bag, topic and field.
"""
import numpy as np

from ..image_codec import ImageDecodeError, decode_compressed_image, decode_image
from .bag_reader import BagError

__all__ = ['make_extractor', 'ImageConverter', 'IMAGE_TYPES', 'TASK_TYPE']

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
TASK_TYPE = 'std_msgs/msg/String'
JOINT_STATE = 'sensor_msgs/msg/JointState'
JOINT_TRAJECTORY = 'trajectory_msgs/msg/JointTrajectory'
TWIST_FIELDS = ['linear.x', 'linear.y', 'linear.z', 'angular.x', 'angular.y', 'angular.z']


def _get_path(msg, path):
    value = msg
    for part in path.split('.'):
        if not hasattr(value, part):
            raise AttributeError(part)
        value = getattr(value, part)
    return value


def _numeric(value):
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return np.array([float(value)])
    arr = np.asarray(value)
    if arr.dtype.kind not in 'biuf':
        raise TypeError(f'not numeric ({type(value).__name__})')
    return arr.astype(np.float64).reshape(-1)


class _JointExtractor:
    """JointState (positions [+ velocities]) or a JointTrajectory point, in the configured joint order."""

    def __init__(self, spec, msgtype, where):
        self.spec, self.msgtype, self.where = spec, msgtype, where
        self.names = list(spec.joints)
        if msgtype == JOINT_STATE and spec.velocities:
            self.names += [f'{j}.velocity' for j in spec.joints]
        self._orders = {}

    def _order(self, msg_names):
        key = tuple(msg_names)
        order = self._orders.get(key)
        if order is None:
            position = {n: i for i, n in enumerate(key)}
            missing = [j for j in self.spec.joints if j not in position]
            if missing:
                raise BagError(f"{self.where}: joint(s) {', '.join(missing)} missing from "
                               f"{'joint_names' if self.msgtype == JOINT_TRAJECTORY else 'name'} "
                               f"(message has: {', '.join(key) or 'none'})")
            order = self._orders[key] = np.array([position[j] for j in self.spec.joints])
        return order

    def __call__(self, msg):
        if self.msgtype == JOINT_STATE:
            order = self._order(msg.name)
            parts = [('position', msg.position)] + ([('velocity', msg.velocity)] if self.spec.velocities else [])
        else:
            order = self._order(msg.joint_names)
            if len(msg.points) <= self.spec.point:
                raise BagError(f'{self.where}: trajectory has {len(msg.points)} point(s), config asks for '
                               f'point {self.spec.point}')
            parts = [(f'points[{self.spec.point}].{self.spec.trajectory_field}',
                      getattr(msg.points[self.spec.point], self.spec.trajectory_field))]
        out = []
        for field, values in parts:
            values = np.asarray(values, dtype=np.float64)
            if len(values) <= order.max():
                raise BagError(f'{self.where}: field {field} has {len(values)} values for '
                               f'{len(order)} configured joints')
            out.append(values[order])
        return np.concatenate(out)


class _MultiArrayExtractor:
    """The data of a std_msgs *MultiArray message (optionally only `indices`).

    Element names come from the config, else from a comma-separated layout.dim[0].label (as
    dynamo_sim's /sim/object_state), else data[i].
    """

    def __init__(self, spec, where):
        self.spec, self.where = spec, where
        self.names = list(spec.names) if spec.names else None

    def _layout_names(self, msg, count):
        dims = msg.layout.dim
        labels = [n.strip() for n in dims[0].label.split(',')] if len(dims) == 1 else []
        if self.spec.indices is not None and len(labels) > max(self.spec.indices):
            labels = [labels[i] for i in self.spec.indices]
        return labels if len(labels) == count and all(labels) else None

    def __call__(self, msg):
        data = np.asarray(msg.data, dtype=np.float64)
        if self.spec.indices is not None:
            if len(data) <= max(self.spec.indices):
                raise BagError(f'{self.where}: field data has {len(data)} values, config indices go up to '
                               f'{max(self.spec.indices)}')
            data = data[self.spec.indices]
        if self.names is None:
            self.names = self._layout_names(msg, len(data)) or [
                f'data[{i}]' for i in (self.spec.indices or range(len(data)))]
        if len(data) != len(self.names):
            raise BagError(f'{self.where}: field data has {len(data)} values, config names {len(self.names)}')
        return data


class _FieldsExtractor:
    """Any numeric field paths (Twist/TwistStamped default to linear/angular x,y,z)."""

    def __init__(self, fields, where):
        self.fields, self.where = fields, where
        self.names = None
        self._sizes = None

    def __call__(self, msg):
        values = []
        for path in self.fields:
            try:
                values.append(_numeric(_get_path(msg, path)))
            except AttributeError as exc:
                raise BagError(f'{self.where}: message has no field {path!r} (missing {exc.args[0]!r})') from None
            except TypeError as exc:
                raise BagError(f'{self.where}: field {path!r} is {exc}') from None
        sizes = [len(v) for v in values]
        if self._sizes is None:
            self._sizes = sizes
            self.names = [p if n == 1 else f'{p}[{i}]' for p, n in zip(self.fields, sizes)
                          for i in range(n)]
        elif sizes != self._sizes:
            raise BagError(f'{self.where}: field sizes changed mid-bag ({self._sizes} -> {sizes})')
        return np.concatenate(values)


def make_extractor(spec, msgtype, where):
    """Extractor for one SourceSpec on a topic of `msgtype`; `where` = 'bag: topic' for messages."""
    if spec.fields:
        return _FieldsExtractor(spec.fields, where)
    if msgtype in (JOINT_STATE, JOINT_TRAJECTORY):
        if not spec.joints:
            raise BagError(f'{where}: {msgtype} needs `joints` (names, in the order wanted) in the config')
        return _JointExtractor(spec, msgtype, where)
    if msgtype.startswith('std_msgs/msg/') and msgtype.endswith('MultiArray'):
        return _MultiArrayExtractor(spec, where)
    if msgtype == 'geometry_msgs/msg/Twist':
        return _FieldsExtractor(TWIST_FIELDS, where)
    if msgtype == 'geometry_msgs/msg/TwistStamped':
        return _FieldsExtractor([f'twist.{f}' for f in TWIST_FIELDS], where)
    raise BagError(f'{where}: type {msgtype} needs `fields` (numeric field paths) in the config')


class ImageConverter:
    """Decode Image/CompressedImage messages into a fixed (H, W, 3) uint8 frame (optional resize)."""

    def __init__(self, spec, msgtype, where):
        self.spec, self.msgtype, self.where = spec, msgtype, where
        self.source = None  # (encoding or format, height, width) of the first decoded message
        self.shape = None

    def _to_rgb(self, pixels):
        if pixels.dtype == np.uint8:
            return pixels if pixels.shape[2] == 3 else np.repeat(pixels, 3, axis=2)
        default = (0.0, 65535.0) if pixels.dtype == np.uint16 else (0.0, 10.0)
        near, far = self.spec.depth_range or default
        scaled = (np.nan_to_num(pixels[:, :, 0].astype(np.float32), nan=near, posinf=far, neginf=near) - near)
        gray = np.clip(scaled * (255.0 / (far - near)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)

    def __call__(self, msg):
        """Return `msg` decoded into a uint8 (H, W, 3) frame."""
        from PIL import Image

        try:
            if self.msgtype == IMAGE_TYPES[0]:
                source = (msg.encoding, int(msg.height), int(msg.width))
                pixels = decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data)
            else:
                pixels = decode_compressed_image(msg.format, msg.data)
                source = (msg.format, pixels.shape[0], pixels.shape[1])
        except ImageDecodeError as exc:
            raise BagError(f'{self.where}: {exc}') from None
        if self.source is None:
            self.source = source
        elif source != self.source:
            raise BagError(f'{self.where}: image changed mid-bag from {self.source[0]} '
                           f'{self.source[2]}x{self.source[1]} to {source[0]} {source[2]}x{source[1]}')
        rgb = self._to_rgb(pixels)
        if self.spec.resize and rgb.shape[:2] != tuple(self.spec.resize):
            h, w = self.spec.resize
            rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR))
        return np.ascontiguousarray(rgb)

    def frame_shape(self, msg):
        """(H, W, 3) this camera produces, from its first message."""
        if self.spec.resize:
            return (*self.spec.resize, 3)
        if self.msgtype == IMAGE_TYPES[0]:
            return (int(msg.height), int(msg.width), 3)
        try:  # decode once to learn the size
            pixels = decode_compressed_image(msg.format, msg.data)
        except ImageDecodeError as exc:
            raise BagError(f'{self.where}: {exc}') from None
        return (pixels.shape[0], pixels.shape[1], 3)
