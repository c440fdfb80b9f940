"""The bring-up graph: what the launch files, the evaluator and the demo start."""

import importlib.util
from pathlib import Path

import pytest
import yaml

from dynamo_bringup.graph import ARGUMENT_DESCRIPTIONS, BringupArguments, NodeSpec, node_graph
from dynamo_bringup.steps import converter_config
from dynamo_data.conversion.config import load_config
from dynamo_sim import interfaces
from dynamo_sim.sim_node import ROBOTS as SIMULATED_ROBOTS

LAUNCH_DIR = Path(__file__).parents[1] / 'launch'
# convert_bags configs of each robot's simulated demonstrations, which policies are trained on
DEMONSTRATION_CONFIGS = {'xarm': 'xarm_kitchen_sim.yaml', 'allegro': 'allegro_hand_sim.yaml'}


def _parameters_from_ros_arguments(arguments: list[str]) -> dict:
    """Parse `-p name:=value` back the way rcl does (values are YAML)."""
    params = {}
    for flag, value in zip(arguments, arguments[1:]):
        if flag == '-p':
            name, text = value.split(':=', 1)
            params[name] = yaml.safe_load(text)
    return params


@pytest.mark.parametrize('robot', ['xarm', 'allegro'])
def test_sim_graph_runs_simulator_encoder_and_policy_on_sim_time(robot):
    specs = node_graph(robot, BringupArguments(sim=True, encoder='/e.pt', policy='/p.pt', task='t', seed=7))
    assert [s.executable for s in specs] == ['sim_node', 'encoder_node', 'policy_node']
    sim, encoder, policy = specs
    assert sim.parameters['use_sim_time'] is False and sim.parameters['seed'] == 7 and sim.parameters['task'] == 't'
    assert encoder.parameters['use_sim_time'] is True and policy.parameters['use_sim_time'] is True
    assert encoder.parameters['checkpoint'] == '/e.pt' and policy.parameters['policy'] == '/p.pt'
    assert sim.parameters['lockstep'] is False
    # The encoder's output reaches the policy's input.
    assert dict(encoder.remappings)['embedding'] == dict(policy.remappings)['embedding']


def test_lockstep_reaches_the_simulator_only():
    specs = node_graph('xarm', BringupArguments(lockstep=True, real_time_factor=0.0))
    sim, *others = specs
    assert sim.parameters['lockstep'] is True and sim.parameters['real_time_factor'] == 0.0
    assert all('lockstep' not in spec.parameters for spec in others)
    assert [s.executable for s in node_graph('xarm', BringupArguments(sim=False, lockstep=True))] == \
        ['encoder_node', 'policy_node']


def test_real_robot_graph_has_no_simulator_and_uses_wall_time():
    specs = node_graph('xarm', BringupArguments(sim=False, camera_topic='/cam/image'))
    assert [s.executable for s in specs] == ['encoder_node', 'policy_node']
    assert all(s.parameters['use_sim_time'] is False for s in specs)
    assert specs[0].parameters['camera_topics'] == ['/cam/image']


def _commanded_joints(policy: NodeSpec) -> dict[str, list[str]]:
    """Return policy_node's joints per command topic, in message order."""
    parameters = policy.parameters
    return {topic: joints.split(',')
            for topic, joints in zip(parameters['command_topics'], parameters['command_joints'], strict=True)}


@pytest.mark.parametrize('sim', [True, False])
@pytest.mark.parametrize('robot', ['xarm', 'allegro'])
def test_policy_sends_each_action_on_the_topic_the_demonstrations_recorded_it_from(robot, sim):
    policy = node_graph(robot, BringupArguments(sim=sim))[-1]
    recorded = load_config(converter_config(DEMONSTRATION_CONFIGS[robot])).action.sources
    assert list(_commanded_joints(policy).items()) == [(source.topic, source.joints or source.names)
                                                        for source in recorded]


@pytest.mark.parametrize('robot', ['xarm', 'allegro'])
def test_policy_commands_every_simulated_joint_with_the_message_the_simulator_takes(robot):
    from dynamo_policy.policy_node import COMMAND_MESSAGE  # here, so that only this test needs torch
    sim, _, policy = node_graph(robot, BringupArguments())
    env = SIMULATED_ROBOTS[sim.parameters['robot']]
    commanded = [joint for joints in _commanded_joints(policy).values() for joint in joints]
    assert commanded == env.joint_names   # the simulator's target vector, in its order
    message = COMMAND_MESSAGE[policy.parameters['command_type']]
    assert f'{message.__module__.split(".")[0]}/msg/{message.__name__}' == interfaces.COMMAND_TYPE[env.robot_type]


@pytest.mark.parametrize('robot', ['xarm', 'allegro'])
def test_ros_arguments_carry_every_parameter_with_its_type(robot):
    for spec in node_graph(robot, BringupArguments(encoder='/tmp/true', task='1.0')):
        arguments = spec.ros_arguments()
        assert arguments[:3] == ['--ros-args', '-r', f'__node:={spec.name}']
        assert _parameters_from_ros_arguments(arguments) == spec.parameters


def test_string_parameters_that_look_like_other_types_stay_strings():
    spec = NodeSpec('p', 'e', 'n', {'a': 'true', 'b': '1.5', 'c': '', 'd': ['x', 'y']})
    assert _parameters_from_ros_arguments(spec.ros_arguments()) == spec.parameters


def test_launch_argument_strings_become_typed_arguments():
    args = BringupArguments.from_strings({'sim': 'False', 'seed': '3', 'real_time_factor': '2.5', 'task': 'x',
                                          'lockstep': 'true'})
    assert args == BringupArguments(sim=False, seed=3, real_time_factor=2.5, task='x', lockstep=True)
    with pytest.raises(ValueError, match='autostart'):
        BringupArguments.from_strings({'autostart': 'maybe'})
    assert set(ARGUMENT_DESCRIPTIONS) == set(BringupArguments.__dataclass_fields__)


@pytest.mark.skipif(importlib.util.find_spec('launch_ros') is None, reason='launch_ros is not installed here')
@pytest.mark.parametrize('launch_file', sorted(p.name for p in LAUNCH_DIR.glob('*.launch.py')))
def test_launch_file_builds_a_launch_description(launch_file):
    from launch import LaunchDescription
    spec = importlib.util.spec_from_file_location(launch_file.replace('.', '_'), LAUNCH_DIR / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert isinstance(module.generate_launch_description(), LaunchDescription)
