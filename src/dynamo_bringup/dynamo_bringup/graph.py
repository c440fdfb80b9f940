"""The node graph of a robot bring-up: which nodes run, with which parameters and remappings.

One source of truth, read by the launch files (launch/*.launch.py turn each NodeSpec into a
launch_ros Node), by the closed-loop evaluator and by the demo (they start each NodeSpec as a
process with the same `--ros-args`), so what is evaluated here is what `ros2 launch` runs.

Parameters come from config/<robot config>.yaml in the usual ROS parameter-file layout
(`<node name>: {ros__parameters: {...}}`), except policy_node's command_topics and command_joints:
those come from dynamo_sim.interfaces, the one mapping of command topics to joints that the
simulator and the demonstrations use too (for command_type follow_joint_trajectory, its mapping of
the trajectory controllers' FollowJointTrajectory actions to joints). The bring-up arguments (sim,
artifacts, camera topic, autostart, ...) are applied on top. Every node runs with
config/fastdds_profile.xml as its Fast DDS profile (shared memory sized for camera images), unless
the environment names another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from dynamo_sim import interfaces


@dataclass(frozen=True)
class Robot:
    config_file: str   # its parameters, in config/
    robot_type: str    # its key in dynamo_sim.interfaces: the real driver's interfaces, which the simulator reproduces


ROBOTS = {
    'xarm': Robot('xarm_kitchen.yaml', 'xarm7'),
    'allegro': Robot('allegro_manipulation.yaml', 'allegro_hand'),
}
FASTDDS_PROFILE = 'fastdds_profile.xml'   # in config/
FASTDDS_PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
TRUE_TEXTS, FALSE_TEXTS = ('true', '1'), ('false', '0')   # what launch conditions accept, in any case


@dataclass(frozen=True)
class NodeSpec:
    """One node of the graph, as `ros2 run <package> <executable> --ros-args ...` would start it."""

    package: str
    executable: str
    name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    remappings: tuple[tuple[str, str], ...] = ()
    environment: dict[str, str] = field(default_factory=dict)   # variables set for its process

    def ros_arguments(self) -> list[str]:
        args = ['--ros-args', '-r', f'__node:={self.name}']
        for key, value in self.parameters.items():
            args += ['-p', f'{key}:={_parameter_text(value)}']
        for source, target in self.remappings:
            args += ['-r', f'{source}:={target}']
        return args

    def command(self) -> list[str]:
        return [self.executable, *self.ros_arguments()]


@dataclass(frozen=True)
class BringupArguments:
    """The launch arguments of a bring-up, with the defaults the launch files declare."""

    sim: bool = True
    encoder: str = ''
    policy: str = ''
    camera_topic: str = '/camera/color/image_raw'
    autostart: bool = False
    task: str = ''
    seed: int = 0
    real_time_factor: float = 1.0
    lockstep: bool = False
    device: str = ''
    observation_timeout: float | None = None   # None keeps the config file value
    command_type: str = ''                     # empty keeps the config file value

    @classmethod
    def from_strings(cls, values: dict[str, str]) -> 'BringupArguments':
        """Typed arguments from the strings launch configurations hold (`sim:=false`).

        Booleans read as launch conditions read them (true/1, false/0, any case); an empty
        observation_timeout keeps the config file value. Raise ValueError naming the argument.
        """
        typed = {}
        for name, default in ((f.name, f.default) for f in fields(cls)):
            if name not in values:
                continue
            text = values[name].strip()
            if isinstance(default, bool):
                if text.lower() not in TRUE_TEXTS + FALSE_TEXTS:
                    raise ValueError(f'launch argument {name}:={text!r} must be true or false (or 1 or 0)')
                typed[name] = text.lower() in TRUE_TEXTS
            elif default is None:
                typed[name] = _number(name, text, float) if text else None
            else:
                typed[name] = _number(name, text, type(default)) if type(default) in (int, float) else text
        return cls(**typed)

    def launch_texts(self) -> dict[str, str]:
        """Return the arguments as launch argument text (from_strings reads them back)."""
        texts = {}
        for name, value in ((f.name, getattr(self, f.name)) for f in fields(self)):
            texts[name] = '' if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        return texts


ARGUMENT_DESCRIPTIONS = {
    'sim': 'Run the simulated robot and camera (true) or the real drivers (false).',
    'encoder': 'Encoder artifact (encoder.pt from `pretrain`); empty keeps the config file value.',
    'policy': 'Policy artifact (policy.pt from `train_policy`); empty keeps the config file value.',
    'camera_topic': 'sensor_msgs/Image topic the encoder reads.',
    'autostart': "Enable the policy at start; otherwise call the policy node's enable service.",
    'task': 'Simulated task to run (sim only); empty keeps the config file value.',
    'seed': 'Seed of the first simulated episode (sim only).',
    'real_time_factor': 'Simulation speed relative to real time, 0 = as fast as possible (sim only).',
    'lockstep': 'Step the simulator only once the policy has answered the last observations (or after '
                "sim_node's lockstep_timeout): runs as fast as the nodes compute, whatever the load; "
                'real_time_factor is then a minimum pacing, 0 = none (sim only).',
    'device': 'torch device of the encoder (auto, cpu, cuda, cuda:N); empty keeps the config file value.',
    'observation_timeout': "Seconds after the newest embedding before the policy's watchdog stops the robot; "
                           'empty keeps the config file value.',
    'command_type': "How the policy commands the robot (policy_node's command_type, e.g. follow_joint_trajectory: "
                    "the trajectory controllers' action, execution reported); empty keeps the config file value.",
}


# Per node, its artifact parameter and the launch argument that sets it.
ARTIFACT_ARGUMENTS = {'encoder_node': ('checkpoint', 'encoder'), 'policy_node': ('policy', 'policy')}


class MissingArtifacts(ValueError):
    """A graph would start nodes without their artifacts; the message names the launch arguments to give."""

    def __init__(self, arguments: list[str]):
        self.arguments = arguments
        super().__init__('give the artifacts as launch arguments: '
                         + ' '.join(f'{argument}:=/path/{argument}.pt' for argument in arguments)
                         + ' (encoder.pt from `pretrain`, policy.pt from `train_policy`)')


def missing_artifact_arguments(nodes: list[NodeSpec]) -> list[str]:
    """Return the launch arguments of the artifacts that neither the arguments nor the config file give.

    Launch refuses such a graph: its encoder and policy would exit at start, naming their parameters
    (--ros-args), not the launch arguments that set them.
    """
    missing = []
    for node in nodes:
        if node.name in ARTIFACT_ARGUMENTS:
            parameter, argument = ARTIFACT_ARGUMENTS[node.name]
            if not node.parameters.get(parameter):
                missing.append(argument)
    return missing


def config_dir() -> Path:
    """dynamo_bringup's config/ through the ament index (share/dynamo_bringup/config)."""
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('dynamo_bringup')) / 'config'


def fastdds_environment() -> dict[str, str]:
    """Return the environment variable that gives a node process config/fastdds_profile.xml.

    Empty when the environment names a profile already: a user's own profile wins.
    """
    if os.environ.get(FASTDDS_PROFILE_VARIABLE):
        return {}
    return {FASTDDS_PROFILE_VARIABLE: str(config_dir() / FASTDDS_PROFILE)}


def load_robot_config(robot: str) -> dict[str, dict[str, Any]]:
    """Parameters per node name from the robot's config file."""
    if robot not in ROBOTS:
        raise ValueError(f'unknown robot {robot!r}; known: {sorted(ROBOTS)}')
    path = config_dir() / ROBOTS[robot].config_file
    with open(path) as f:
        document = yaml.safe_load(f) or {}
    try:
        return {name: dict(entry['ros__parameters']) for name, entry in document.items()}
    except (TypeError, KeyError) as exc:
        raise ValueError(f'{path}: every top-level entry needs a ros__parameters mapping ({exc})') from None


def node_graph(robot: str, args: BringupArguments) -> list[NodeSpec]:
    """Return the nodes of `robot`'s bring-up; the simulator is one of them only when args.sim."""
    config = load_robot_config(robot)
    use_sim_time = args.sim
    environment = fastdds_environment()
    nodes = []
    if args.sim:
        sim = dict(config['sim_node'])
        sim['use_sim_time'] = False  # the simulator is the clock
        sim['real_time_factor'] = args.real_time_factor
        sim['lockstep'] = args.lockstep
        sim['seed'] = args.seed
        if args.task:
            sim['task'] = args.task
        nodes.append(NodeSpec('dynamo_sim', 'sim_node', 'sim_node', sim, environment=environment))

    encoder = dict(config['encoder_node'])
    encoder.update(use_sim_time=use_sim_time, camera_topics=[args.camera_topic])
    if args.encoder:
        encoder['checkpoint'] = args.encoder
    if args.device:
        encoder['device'] = args.device
    nodes.append(NodeSpec('dynamo_encoder', 'encoder_node', 'encoder_node', encoder,
                          remappings=(('embedding', '/dynamo/embedding'),), environment=environment))

    policy = dict(config['policy_node'])
    if args.command_type:
        policy['command_type'] = args.command_type
    policy.update(_command_parameters(ROBOTS[robot].robot_type, policy.get('command_type', 'joint_trajectory')),
                  use_sim_time=use_sim_time, autostart=args.autostart)
    if args.policy:
        policy['policy'] = args.policy
    if args.observation_timeout is not None:
        policy['observation_timeout'] = args.observation_timeout
    nodes.append(NodeSpec('dynamo_policy', 'policy_node', 'policy_node', policy,
                          remappings=(('embedding', '/dynamo/embedding'),), environment=environment))
    return nodes


def _command_parameters(robot_type: str, command_type: str) -> dict[str, list[str]]:
    """Return policy_node's command_topics and command_joints (per topic, its joints comma-separated).

    For follow_joint_trajectory the "topics" are the trajectory controllers' actions.
    """
    if command_type == 'follow_joint_trajectory':
        actions = interfaces.TRAJECTORY_ACTIONS[robot_type]
        if not actions:
            raise ValueError(f'command_type follow_joint_trajectory needs trajectory controllers; {robot_type} '
                             'has forward position controllers only')
        commands = {action: spec['joints'] for action, spec in actions.items()}
    else:
        commands = interfaces.COMMAND_JOINTS[robot_type]
    return {'command_topics': list(commands), 'command_joints': [','.join(joints) for joints in commands.values()]}


def _number(name: str, text: str, number_type: type) -> int | float:
    try:
        return number_type(text)
    except ValueError:
        raise ValueError(f'launch argument {name}:={text!r} must be a{"n" if number_type is int else ""} '
                         f'{number_type.__name__}') from None


def _parameter_text(value: Any) -> str:
    """Format a parameter value the way `-p name:=value` parses it.

    YAML, quoted where a string would read as another type ('true', '1.0'), lists in flow style.
    """
    text = yaml.safe_dump(value, default_flow_style=True, width=float('inf'))
    return text.removesuffix('\n').removesuffix('\n...').strip()
