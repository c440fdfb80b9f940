"""record_demos: run the scripted experts and write one rosbag2 bag per successful episode.

    record_demos --task open_door --episodes 20 --output bags/open_door [--storage mcap|sqlite3]
                 [--seed 0] [--image-size 96] [--menagerie PATH]

Each bag holds exactly the topics of a `ros2 bag record` of the real robot (see
dynamo_sim.interfaces.recorded_topics) plus the sim-only /sim/object_state. Message types are
registered from the official .msg texts shipped by the ROS wheels, so type hashes (RIHS01) equal
real ROS 2's. Per control step at sim time t: joint_states, image, camera_info, object_state
observed at t, then the command(s) the expert sent at t; /task once at t=0. As in sim_node, the
first observation is one control period after the reset. Bags are written to a
temporary directory and renamed when complete, and existing bags are skipped, so an interrupted
run resumes. MCAP files get the CRCs rosbags leaves out (chunks, data section, summary), so a
damaged byte is reported by every reader instead of converting silently. Episodes the expert
fails are not kept; seeds continue until N bags exist.
--menagerie draws the robot with the meshes of a local MuJoCo Menagerie checkout (see
dynamo_sim.envs); the physics, and so the expert's motions, are the same either way.
"""
from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
from binascii import crc32
from pathlib import Path
from typing import Iterator

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from tqdm import tqdm

from dynamo_sim import interfaces
from dynamo_sim.envs import TASKS, SimEnv, SimError, make_env
from dynamo_sim.experts import make_expert

# Every type our bags use, with the types they contain.
MSG_TYPES = [
    'builtin_interfaces/msg/Time', 'builtin_interfaces/msg/Duration', 'std_msgs/msg/Header',
    'std_msgs/msg/String', 'std_msgs/msg/MultiArrayDimension', 'std_msgs/msg/MultiArrayLayout',
    'std_msgs/msg/Float64MultiArray', 'sensor_msgs/msg/JointState', 'sensor_msgs/msg/Image',
    'sensor_msgs/msg/RegionOfInterest', 'sensor_msgs/msg/CameraInfo',
    'trajectory_msgs/msg/JointTrajectoryPoint', 'trajectory_msgs/msg/JointTrajectory',
]


def msg_share_dir() -> Path:
    """share/ of the ROS wheels (the venv prefix), where <pkg>/msg/<Name>.msg live."""
    for prefix in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) + [sys.prefix]:
        if prefix and (Path(prefix) / 'share' / 'sensor_msgs' / 'msg' / 'Image.msg').is_file():
            return Path(prefix) / 'share'
    raise FileNotFoundError(
        f'no share/sensor_msgs/msg/Image.msg under AMENT_PREFIX_PATH or {sys.prefix}; '
        'install the ROS message wheels (ros-sensor-msgs, ros-trajectory-msgs, ...)'
    )


def ros_typestore():
    """Return a rosbags typestore with our message types registered from the official .msg files."""
    share = msg_share_dir()
    store = get_typestore(Stores.EMPTY)
    types = {}
    for name in MSG_TYPES:
        pkg, _, msg = name.split('/')
        path = share / pkg / 'msg' / f'{msg}.msg'
        types.update(get_types_from_msg(path.read_text(), name))
    store.register(types)
    return store


class EpisodeBag:
    """Writes one episode's messages into an open rosbags Writer (sim time stamps)."""

    def __init__(self, writer: Writer, store, env: SimEnv, camera: str):
        self.writer, self.store, self.env, self.camera = writer, store, env, camera
        self.connections = {
            topic: writer.add_connection(topic, msgtype, typestore=store)
            for topic, msgtype in interfaces.recorded_topics(env.robot_type).items()
        }
        self.counts = {topic: 0 for topic in self.connections}
        T = store.types
        self.T = T
        self._Time = T['builtin_interfaces/msg/Time']
        self._Header = T['std_msgs/msg/Header']

    def _write(self, topic, msg, t_ns):
        msgtype = interfaces.recorded_topics(self.env.robot_type)[topic]
        self.writer.write(self.connections[topic], t_ns, self.store.serialize_cdr(msg, msgtype))
        self.counts[topic] += 1

    def _header(self, t_ns, frame_id=''):
        return self._Header(stamp=self._Time(sec=t_ns // 10**9, nanosec=t_ns % 10**9), frame_id=frame_id)

    def _float_array(self, label, values):
        T = self.T
        dim = T['std_msgs/msg/MultiArrayDimension'](label=label, size=len(values), stride=len(values))
        layout = T['std_msgs/msg/MultiArrayLayout'](dim=[dim], data_offset=0)
        return T['std_msgs/msg/Float64MultiArray'](layout=layout, data=np.asarray(values, dtype=np.float64))

    def write_task(self, t_ns):
        self._write(interfaces.TASK, self.T['std_msgs/msg/String'](data=self.env.task), t_ns)

    def write_observation(self, t_ns):
        T, env = self.T, self.env
        self._write(interfaces.JOINT_STATES, T['sensor_msgs/msg/JointState'](
            header=self._header(t_ns), name=list(env.joint_names),
            position=env.joint_positions(), velocity=env.joint_velocities(), effort=env.joint_efforts(),
        ), t_ns)
        image = env.render(self.camera)
        h, w, _ = image.shape
        self._write(interfaces.IMAGE, T['sensor_msgs/msg/Image'](
            header=self._header(t_ns, interfaces.CAMERA_FRAME), height=h, width=w, encoding='rgb8',
            is_bigendian=0, step=3 * w, data=image.reshape(-1),
        ), t_ns)
        fx, fy, cx, cy = env.camera_intrinsics(self.camera)
        roi = T['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        self._write(interfaces.CAMERA_INFO, T['sensor_msgs/msg/CameraInfo'](
            header=self._header(t_ns, interfaces.CAMERA_FRAME), height=h, width=w, distortion_model='plumb_bob',
            d=np.zeros(5), k=np.array([fx, 0, cx, 0, fy, cy, 0, 0, 1.0]), r=np.eye(3).reshape(-1),
            p=np.array([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1.0, 0]), binning_x=0, binning_y=0, roi=roi,
        ), t_ns)
        object_state = self._float_array(','.join(env.object_state_names), env.object_state())
        self._write(interfaces.OBJECT_STATE, object_state, t_ns)

    def write_command(self, t_ns, targets):
        T = self.T
        for topic, (names, values) in interfaces.split_command(self.env.robot_type, targets).items():
            if self.env.robot_type == 'xarm7':
                dt_ns = int(round(self.env.dt * 1e9))
                point = T['trajectory_msgs/msg/JointTrajectoryPoint'](
                    positions=np.array(values), velocities=np.zeros(0), accelerations=np.zeros(0), effort=np.zeros(0),
                    time_from_start=T['builtin_interfaces/msg/Duration'](sec=dt_ns // 10**9, nanosec=dt_ns % 10**9),
                )
                msg = T['trajectory_msgs/msg/JointTrajectory'](
                    header=self._header(t_ns), joint_names=names, points=[point])
            else:
                msg = self._float_array('', values)
            self._write(topic, msg, t_ns)


def add_mcap_crcs(path: Path) -> None:
    """Fill in the CRC fields of an uncompressed MCAP file written by rosbags (which writes 0: "not set").

    Chunk records get the CRC of their records, the data-end record that of everything before it,
    and the footer that of the summary section, as the MCAP specification defines them.
    """
    with open(path, 'r+b') as f:
        data = bytearray(f.read())
        pos = 8  # after the magic
        while True:
            op, length = struct.unpack_from('<BQ', data, pos)
            body = pos + 9
            if op == 0x06:  # chunk: start, end, uncompressed size, CRC, compression, records
                size = struct.unpack_from('<Q', data, body + 16)[0]
                (compression_len,) = struct.unpack_from('<I', data, body + 28)
                if compression_len:
                    raise ValueError(f'{path}: compressed chunks are not expected here')
                records = body + 28 + 4 + 8
                struct.pack_into('<I', data, body + 24, crc32(data[records:records + size]))
            elif op == 0x0F:  # data end: CRC of every byte before it
                struct.pack_into('<I', data, body, crc32(data[:pos]))
                break
            pos = body + length
        footer = len(data) - 8 - 29  # footer record: opcode, length, summary start, summary offset start, CRC
        (summary_start,) = struct.unpack_from('<Q', data, footer + 9)
        if summary_start:
            struct.pack_into('<I', data, footer + 25, crc32(data[summary_start:footer + 25]))
        f.seek(0)
        f.write(data)


def expert_rollout(env: SimEnv, seed: int, settle_steps: int = 3) -> Iterator[np.ndarray]:
    """Reset `env` to `seed` and play its scripted expert, then `settle_steps` more steps on the last targets.

    Yields the targets of each control step; the env takes the step when the caller asks for the
    next one, so the caller observes the state the targets answer. env.success() tells the outcome
    once the iteration is over.
    """
    env.reset(seed)
    expert = make_expert(env, seed)
    # Like sim_node, hold the start pose for one period before the first observation: stamps
    # then start at one period, never 0 (a zero header.stamp reads as "unset" to consumers).
    env.step(env.home_targets())
    targets = None
    while not expert.done or settle_steps > 0:
        if expert.done:
            settle_steps -= 1
        else:
            targets = expert.act()
        yield targets
        env.step(targets)


def record_episode(env: SimEnv, seed: int, bag_dir: Path, storage: str = 'mcap', camera: str = 'front',
                   store=None) -> bool:
    """Run the expert on `seed` and write the bag at `bag_dir` (atomically) if it succeeds."""
    store = store or ros_typestore()
    bag_dir = Path(bag_dir)
    # the storage file is named after its directory, so the temporary bag keeps the final name
    tmp = bag_dir.parent / '.partial' / bag_dir.name
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    plugin = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}[storage]
    with Writer(tmp, version=9, storage_plugin=plugin) as writer:
        bag = EpisodeBag(writer, store, env, camera)
        bag.write_task(0)
        for targets in expert_rollout(env, seed):
            t_ns = int(round(env.time * 1e9))
            bag.write_observation(t_ns)
            bag.write_command(t_ns, targets)
        bag.write_observation(int(round(env.time * 1e9)))
    if not env.success():
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    for mcap in tmp.glob('*.mcap'):
        add_mcap_crcs(mcap)
    os.replace(tmp, bag_dir)
    if not any(tmp.parent.iterdir()):
        tmp.parent.rmdir()
    return True


def record_demos(task: str, episodes: int, output: Path, storage: str = 'mcap', seed: int = 0,
                 image_size: int = 96, camera: str = 'front', max_attempts_factor: int = 3,
                 menagerie_path: Path | None = None) -> list[Path]:
    """Record `episodes` successful expert episodes of `task` into output/<task>_<seed>/ bags."""
    # the env first, so a bad menagerie path leaves no empty output directory behind
    env = make_env(task, seed, image_size=image_size, menagerie_path=menagerie_path)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    store = ros_typestore()
    bags, failed = [], []
    progress = tqdm(total=episodes, desc=f'record {task}', unit='episode')
    s = seed
    while len(bags) < episodes and s < seed + max_attempts_factor * episodes:
        bag_dir = output / f'{task}_{s:05d}'
        if bag_dir.is_dir() or record_episode(env, s, bag_dir, storage, camera, store):
            bags.append(bag_dir)
            progress.update(1)
        else:
            failed.append(s)
        s += 1
    progress.close()
    env.close()
    if failed:
        print(f'record_demos: expert failed on seeds {failed} (not recorded)', file=sys.stderr)
    if len(bags) < episodes:
        raise RuntimeError(f'only {len(bags)} of {episodes} {task} episodes succeeded within {s - seed} seeds')
    return bags


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='record_demos', description=__doc__.splitlines()[0])
    parser.add_argument('--task', required=True, choices=sorted(TASKS), help='task to demonstrate')
    parser.add_argument('--episodes', type=int, required=True, help='number of successful episodes to record')
    parser.add_argument('--output', type=Path, required=True, help='directory that receives one bag per episode')
    parser.add_argument('--storage', choices=['mcap', 'sqlite3'], default='mcap', help='rosbag2 storage plugin')
    parser.add_argument('--seed', type=int, default=0, help='first episode seed (seeds increase by one)')
    parser.add_argument('--image-size', type=int, default=96, help='camera image height = width in pixels')
    parser.add_argument('--menagerie', type=Path, metavar='PATH',
                        help='local MuJoCo Menagerie checkout whose meshes draw the robot (default: simple geometry)')
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error('--episodes must be >= 1')
    if args.image_size < 16:
        parser.error('--image-size must be >= 16')
    try:
        bags = record_demos(args.task, args.episodes, args.output, args.storage, args.seed, args.image_size,
                            menagerie_path=args.menagerie)
    except SimError as error:  # a --menagerie path without the robot's model
        parser.error(str(error))
    except (RuntimeError, OSError) as error:  # too few successful episodes; an output that cannot be written
        print(f'record_demos: error: {error}', file=sys.stderr)
        return 1
    print(f'{len(bags)} bags in {args.output}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
