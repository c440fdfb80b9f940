"""Write small rosbag2 bags with rosbags for the converter tests (both storages, split bags)."""
import io
import shutil
from pathlib import Path

import numpy as np
import yaml
from PIL import Image as PILImage
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

TS = get_typestore(Stores.ROS2_KILTED)
T = TS.types
ARM = [f'joint{i}' for i in range(1, 8)]
XARM_JOINTS = ARM + ['drive_joint']


def _time(ns):
    return T['builtin_interfaces/msg/Time'](sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def header(ns, frame='base'):
    return T['std_msgs/msg/Header'](stamp=_time(ns), frame_id=frame)


def image(ns, rgb, encoding='rgb8', pad=0):
    h, w, _ = rgb.shape
    if encoding == 'bgr8':
        rgb = rgb[:, :, ::-1]
    rows = np.zeros((h, w * 3 + pad), dtype=np.uint8)
    rows[:, : w * 3] = rgb.reshape(h, -1)
    return T['sensor_msgs/msg/Image'](header=header(ns, 'cam'), height=h, width=w, encoding=encoding,
                                      is_bigendian=0, step=w * 3 + pad, data=rows.reshape(-1))


def compressed(ns, rgb, fmt='png'):
    buf = io.BytesIO()
    PILImage.fromarray(rgb).save(buf, format='PNG' if fmt == 'png' else 'JPEG', quality=95)
    return T['sensor_msgs/msg/CompressedImage'](header=header(ns, 'cam'), format=fmt,
                                                data=np.frombuffer(buf.getvalue(), dtype=np.uint8))


def joint_state(ns, names, position, velocity=None):
    return T['sensor_msgs/msg/JointState'](
        header=header(ns), name=list(names), position=np.asarray(position, dtype=np.float64),
        velocity=np.asarray(velocity if velocity is not None else [], dtype=np.float64),
        effort=np.zeros(0, dtype=np.float64))


def trajectory(ns, names, positions):
    point = T['trajectory_msgs/msg/JointTrajectoryPoint'](
        positions=np.asarray(positions, dtype=np.float64), velocities=np.zeros(0), accelerations=np.zeros(0),
        effort=np.zeros(0), time_from_start=T['builtin_interfaces/msg/Duration'](sec=0, nanosec=100_000_000))
    return T['trajectory_msgs/msg/JointTrajectory'](header=header(ns), joint_names=list(names), points=[point])


def float_array(values):
    layout = T['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0)
    return T['std_msgs/msg/Float64MultiArray'](layout=layout, data=np.asarray(values, dtype=np.float64))


def string(text):
    return T['std_msgs/msg/String'](data=text)


def twist_stamped(ns, lin, ang):
    v3 = T['geometry_msgs/msg/Vector3']
    return T['geometry_msgs/msg/TwistStamped'](header=header(ns), twist=T['geometry_msgs/msg/Twist'](
        linear=v3(x=lin[0], y=lin[1], z=lin[2]), angular=v3(x=ang[0], y=ang[1], z=ang[2])))


def write_bag(path, messages, storage='mcap'):
    """messages: iterable of (topic, msgtype, receive ns, message). Returns the bag directory."""
    path = Path(path)
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    messages = sorted(messages, key=lambda m: m[2])
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {}
        for topic, msgtype, _, _ in messages:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=TS)
        for topic, msgtype, ns, msg in messages:
            writer.write(conns[topic], ns, TS.serialize_cdr(msg, msgtype))
    return path


def write_split_bag(path, messages, storage='mcap'):
    """Write a bag directory whose messages are split over two storage files, as `ros2 bag record --max-bag-*`."""
    path = Path(path)
    messages = sorted(messages, key=lambda m: m[2])
    half = len(messages) // 2
    first = write_bag(path, messages[:half], storage)
    second = write_bag(path.with_name(path.name + '_part2'), messages[half:], storage)
    meta_a = yaml.safe_load((first / 'metadata.yaml').read_text())
    meta_b = yaml.safe_load((second / 'metadata.yaml').read_text())
    info_a, info_b = meta_a['rosbag2_bagfile_information'], meta_b['rosbag2_bagfile_information']
    ext = '.mcap' if storage == 'mcap' else '.db3'
    new_name = f'{path.name}_1{ext}'
    shutil.move(second / info_b['relative_file_paths'][0], first / new_name)
    shutil.rmtree(second)
    info_a['relative_file_paths'].append(new_name)
    info_b['files'][0]['path'] = new_name
    info_a['files'] += info_b['files']
    counts = {t['topic_metadata']['name']: t for t in info_a['topics_with_message_count']}
    for t in info_b['topics_with_message_count']:
        if t['topic_metadata']['name'] in counts:
            counts[t['topic_metadata']['name']]['message_count'] += t['message_count']
        else:
            info_a['topics_with_message_count'].append(t)
    info_a['message_count'] += info_b['message_count']
    end = info_b['starting_time']['nanoseconds_since_epoch'] + info_b['duration']['nanoseconds']
    info_a['duration']['nanoseconds'] = end - info_a['starting_time']['nanoseconds_since_epoch']
    (first / 'metadata.yaml').write_text(yaml.safe_dump(meta_a))
    return first


def scene_image(t, h=24, w=32):
    """Return a frame whose content encodes t (so tests can tell which message landed on a grid time)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 7 + t * 3) % 256, (yy * 9) % 256, np.full_like(xx, (t * 11) % 256)], axis=-1)
    return img.astype(np.uint8)


def xarm_messages(n=30, fps=10, t0=1_700_000_000_000_000_000, jitter_s=0.0, drop=(), camera='raw',
                  seed=0, shuffle_joints=True, task='open the fridge door', image_hw=(24, 32), gap_after=None,
                  gap_s=0.0):
    """Return an xArm kitchen recording: camera, /joint_states (reordered names), arm + gripper trajectories, /task.

    Stream k carries value k/100 + frame so the right message per grid time can be checked.
    """
    rng = np.random.default_rng(seed)
    period = int(1e9 / fps)
    msgs = [('/task', 'std_msgs/msg/String', t0 - 10_000_000, string(task))]
    for k in range(n):
        stamp = t0 + k * period + int(rng.uniform(-jitter_s, jitter_s) * 1e9)
        if gap_after is not None and k > gap_after:
            stamp += int(gap_s * 1e9)
        recv = stamp + 2_000_000
        if k not in drop:
            rgb = scene_image(k, *image_hw)
            if camera == 'raw':
                msgs.append(('/camera/color/image_raw', 'sensor_msgs/msg/Image', recv, image(stamp, rgb)))
            else:
                msgs.append(('/camera/color/image_raw/compressed', 'sensor_msgs/msg/CompressedImage', recv,
                             compressed(stamp, rgb, camera)))
        names = list(XARM_JOINTS)
        if shuffle_joints:
            rng.shuffle(names)
        positions = [XARM_JOINTS.index(j) / 100 + k for j in names]
        msgs.append(('/joint_states', 'sensor_msgs/msg/JointState', recv + 1000,
                     joint_state(stamp, names, positions, [-p for p in positions])))
        msgs.append(('/xarm7_traj_controller/joint_trajectory', 'trajectory_msgs/msg/JointTrajectory', recv + 2000,
                     trajectory(stamp, ARM, [i / 100 + k + 0.5 for i in range(7)])))
        msgs.append(('/xarm_gripper_traj_controller/joint_trajectory', 'trajectory_msgs/msg/JointTrajectory',
                     recv + 3000, trajectory(stamp, ['drive_joint'], [7 / 100 + k + 0.5])))
    return msgs


XARM_CONFIG = {
    'fps': 10,
    'robot_type': 'xarm7',
    'cameras': {'front': {'topic': '/camera/color/image_raw'}},
    'state': {'topic': '/joint_states', 'joints': XARM_JOINTS},
    'action': [{'topic': '/xarm7_traj_controller/joint_trajectory', 'joints': ARM},
               {'topic': '/xarm_gripper_traj_controller/joint_trajectory', 'joints': ['drive_joint']}],
    'task': {'topic': '/task'},
}


def write_config(path, overrides=None, remove=()):
    cfg = {**XARM_CONFIG, **(overrides or {})}
    for key in remove:
        cfg.pop(key)
    Path(path).write_text(yaml.safe_dump(cfg))
    return Path(path)
