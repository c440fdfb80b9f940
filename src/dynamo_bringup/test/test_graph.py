"""The bring-up graph: what the launch files, the evaluator and the demo start."""

import importlib.util
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
import yaml

from dynamo_bringup.graph import (
    ARGUMENT_DESCRIPTIONS,
    FASTDDS_PROFILE_VARIABLE,
    BringupArguments,
    MissingArtifacts,
    NodeSpec,
    config_dir,
    load_robot_config,
    missing_artifact_arguments,
    node_graph,
)
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
    with pytest.raises(ValueError, match=r"seed:='3.5' must be an int"):
        BringupArguments.from_strings({'seed': '3.5'})
    assert set(ARGUMENT_DESCRIPTIONS) == set(BringupArguments.__dataclass_fields__)


@pytest.mark.parametrize('text, value', [('true', True), ('True', True), ('1', True), ('TRUE', True),
                                         ('false', False), ('False', False), ('0', False)])
def test_booleans_read_as_launch_conditions_read_them(text, value):
    assert BringupArguments.from_strings({'sim': text, 'lockstep': text}) == BringupArguments(sim=value, lockstep=value)


@pytest.mark.parametrize('text', ['yes', '2', '', 'on'])
def test_other_boolean_texts_are_refused_with_the_argument_named(text):
    with pytest.raises(ValueError, match=f'launch argument sim:={text!r} must be true or false'):
        BringupArguments.from_strings({'sim': text})


def test_declared_defaults_read_back_as_the_default_arguments():
    assert BringupArguments.from_strings(BringupArguments().launch_texts()) == BringupArguments()
    custom = BringupArguments(sim=False, device='cuda:1', observation_timeout=0.25, seed=4)
    assert BringupArguments.from_strings(custom.launch_texts()) == custom


@pytest.mark.parametrize('robot', ['xarm', 'allegro'])
def test_device_and_observation_timeout_reach_the_encoder_and_the_policy(robot):
    _, encoder, policy = node_graph(robot, BringupArguments.from_strings(
        {'device': 'cpu', 'observation_timeout': '0.25'}))
    assert encoder.parameters['device'] == 'cpu' and policy.parameters['observation_timeout'] == 0.25
    # empty (the declared defaults) keeps the config file's values
    config = load_robot_config(robot)
    _, encoder, policy = node_graph(robot, BringupArguments.from_strings({'device': '', 'observation_timeout': ''}))
    assert encoder.parameters['device'] == config['encoder_node']['device']
    assert policy.parameters['observation_timeout'] == config['policy_node']['observation_timeout']
    with pytest.raises(ValueError, match=r"observation_timeout:='soon' must be a float"):
        BringupArguments.from_strings({'observation_timeout': 'soon'})


@pytest.mark.parametrize('sim', [True, False])
def test_every_node_runs_with_the_installed_fastdds_profile(sim, monkeypatch):
    monkeypatch.delenv(FASTDDS_PROFILE_VARIABLE, raising=False)
    profiles = {spec.environment[FASTDDS_PROFILE_VARIABLE] for spec in node_graph('xarm', BringupArguments(sim=sim))}
    assert profiles == {str(config_dir() / 'fastdds_profile.xml')}
    # a profile the user names wins
    monkeypatch.setenv(FASTDDS_PROFILE_VARIABLE, '/etc/my_profile.xml')
    assert all(spec.environment == {} for spec in node_graph('xarm', BringupArguments(sim=sim)))


def test_the_fastdds_profile_is_installed_in_the_share_directory():
    profile = config_dir() / 'fastdds_profile.xml'
    if not (Path(__file__).parents[1] / 'config' / 'fastdds_profile.xml').exists():
        pytest.skip('config/fastdds_profile.xml is not in the sources yet')
    assert profile.is_file(), f'{profile} is not installed: rerun `make setup`'
    assert ElementTree.parse(profile).getroot().tag.endswith('dds')


@pytest.mark.parametrize('sim', [True, False])
def test_a_graph_without_artifacts_names_both_launch_arguments(sim):
    missing = missing_artifact_arguments(node_graph('xarm', BringupArguments(sim=sim)))
    assert missing == ['encoder', 'policy']
    message = str(MissingArtifacts(missing))
    assert 'encoder:=/path/encoder.pt' in message and 'policy:=/path/policy.pt' in message


def test_a_graph_with_one_artifact_names_the_other():
    assert missing_artifact_arguments(node_graph('xarm', BringupArguments(encoder='/e.pt'))) == ['policy']
    assert missing_artifact_arguments(node_graph('xarm', BringupArguments(policy='/p.pt'))) == ['encoder']
    assert missing_artifact_arguments(node_graph('xarm', BringupArguments(encoder='/e.pt', policy='/p.pt'))) == []


def test_artifacts_set_in_the_config_file_need_no_launch_arguments(tmp_path, monkeypatch):
    """An install whose config file names the artifacts launches without encoder:= and policy:=."""
    share = tmp_path / 'share'
    (share / 'ament_index' / 'resource_index' / 'packages').mkdir(parents=True)
    (share / 'ament_index' / 'resource_index' / 'packages' / 'dynamo_bringup').touch()
    (share / 'dynamo_bringup' / 'config').mkdir(parents=True)
    config = yaml.safe_load((config_dir() / 'xarm_kitchen.yaml').read_text())
    config['encoder_node']['ros__parameters']['checkpoint'] = '/opt/artifacts/encoder.pt'
    config['policy_node']['ros__parameters']['policy'] = '/opt/artifacts/policy.pt'
    (share / 'dynamo_bringup' / 'config' / 'xarm_kitchen.yaml').write_text(yaml.safe_dump(config))
    monkeypatch.setenv('AMENT_PREFIX_PATH', f'{tmp_path}{os.pathsep}{os.environ["AMENT_PREFIX_PATH"]}')
    assert config_dir() == share / 'dynamo_bringup' / 'config'
    assert missing_artifact_arguments(node_graph('xarm', BringupArguments())) == []


SIMULATOR_MODULES = ('mujoco', 'dynamo_sim.models')


def _simulator_modules_loaded_by(code):
    """Run `code` in a fresh interpreter, so that modules imported by other tests of this session do not count."""
    probe = f'{code}\nimport json, sys\nprint(json.dumps([m for m in {SIMULATOR_MODULES!r} if m in sys.modules]))'
    done = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('module', ['dynamo_bringup.graph', 'dynamo_sim.interfaces'])
def test_the_launch_files_modules_load_no_simulator(module):
    """A real-robot host launches without MuJoCo: the graph and the interface names need no simulator."""
    assert _simulator_modules_loaded_by(f'import {module}') == []


def test_the_probe_sees_the_simulator_when_the_models_are_imported():
    """MuJoCo is installed here, so an import of it from the graph or the interfaces would be caught above."""
    assert _simulator_modules_loaded_by('import dynamo_sim.models') == list(SIMULATOR_MODULES)


@pytest.mark.skipif(importlib.util.find_spec('launch_ros') is None, reason='launch_ros is not installed here')
@pytest.mark.parametrize('launch_file', sorted(p.name for p in LAUNCH_DIR.glob('*.launch.py')))
def test_launch_file_builds_a_launch_description(launch_file):
    from launch import LaunchDescription
    spec = importlib.util.spec_from_file_location(launch_file.replace('.', '_'), LAUNCH_DIR / launch_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert isinstance(module.generate_launch_description(), LaunchDescription)
