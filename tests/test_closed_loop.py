"""Closed loop through the real parts, from the sample bags to the simulated robot.

Sample bags -> convert_bags -> encoder artifact -> train_policy -> the bring-up graph's sim_node,
encoder_node and policy_node over DDS.
"""

import csv
import dataclasses
import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool

from dynamo_bringup.evaluate import main as evaluate_main
from dynamo_bringup.graph import BringupArguments, node_graph
from dynamo_bringup.processes import resolve_executable
from dynamo_data import LeRobotDataset
from dynamo_encoder.artifact import EncoderArtifact
from dynamo_msgs.msg import EpisodeResult
from dynamo_msgs.srv import ResetEpisode
from dynamo_util.service_client import ServiceClient

pytestmark = pytest.mark.ros

REPO = Path(__file__).parents[1]
SAMPLE_BAGS = sorted((REPO / 'bags' / 'xarm_kitchen').iterdir())
CONVERTER_CONFIG = REPO / 'src' / 'dynamo_data' / 'config' / 'xarm_kitchen_sim.yaml'
ARM = '/xarm7_traj_controller/joint_trajectory'
ARM_AND_GRIPPER = {ARM: [f'joint{i}' for i in range(1, 8)],
                   '/xarm_gripper_traj_controller/joint_trajectory': ['drive_joint']}


def _seconds(stamp) -> float:
    return stamp.sec + 1e-9 * stamp.nanosec


def _run(command: list[str]) -> None:
    completed = subprocess.run([resolve_executable(command[0]), *command[1:]], capture_output=True, text=True)
    assert completed.returncode == 0, f'{command[0]} failed:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}'


@pytest.fixture(scope='module')
def artifacts(tmp_path_factory):
    """Convert the sample bags to a dataset and train a kNN policy on a (random-init) encoder's embeddings."""
    root = tmp_path_factory.mktemp('closed_loop')
    dataset = root / 'dataset'
    _run(['convert_bags', *map(str, SAMPLE_BAGS), '--config', str(CONVERTER_CONFIG), '--output', str(dataset)])
    encoder = root / 'encoder.pt'
    EncoderArtifact.random_init('resnet_small', LeRobotDataset(dataset).camera_names, (64, 64), seed=0).save(encoder)
    policy_dir = root / 'policy'
    _run(['train_policy', '--dataset', str(dataset), '--encoder', str(encoder), '--policy', 'knn',
          '--output', str(policy_dir)])
    return {'encoder': encoder, 'policy': policy_dir / 'policy.pt', 'root': root}


def test_policy_moves_the_simulated_xarm_and_the_episode_reports_a_result(artifacts, ros_processes, ros_node):
    """As `ros2 launch ... autostart:=true` runs it: the first episode waits for the policy's first command.

    The encoder and the policy load for longer than an episode lasts; the simulated robot holds
    still until the policy commands it, so the first episode is the policy's, with no reset.
    """
    joint_states = ros_node.collect(JointState, '/joint_states')
    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    results = ros_node.collect(EpisodeResult, '/sim/episode_result', latched)
    specs = node_graph('xarm', BringupArguments(
        sim=True, encoder=str(artifacts['encoder']), policy=str(artifacts['policy']), autostart=True,
        task='open_door', seed=100_000, real_time_factor=1.0))
    for spec in specs:
        ros_processes.start(spec.command(), name=spec.name, env=spec.environment)
    ros_node.spin_until(lambda: results, timeout=180, what='the EpisodeResult of the first episode')

    [result] = results
    assert (result.task, result.seed) == ('open_door', 100_000)
    assert result.reason in ('success', 'timeout') and result.steps > 0
    positions = np.array([m.position for m in joint_states])
    travelled = positions.max(axis=0) - positions.min(axis=0)
    assert travelled.max() > 0.05, f'the arm did not follow the policy: joint ranges {travelled}'


def _start_lockstep_graph(encoder: Path, policy: Path, ros_processes, ros_node):
    """Start the xArm bring-up graph in lockstep, the policy disabled; return processes, reset and enable clients."""
    specs = node_graph('xarm', BringupArguments(
        sim=True, encoder=str(encoder), policy=str(policy), task='open_door', real_time_factor=0.0, lockstep=True))
    # A generous timeout instead of the bring-up's 0.2 s: on a loaded machine one step of the nodes
    # can take longer, and a step taken without the policy's command would break the exact repeat.
    specs = [dataclasses.replace(s, parameters={**s.parameters, 'lockstep_timeout': 2.0}) if s.name == 'sim_node'
             else s for s in specs]
    processes = {spec.name: ros_processes.start(spec.command(), name=spec.name, env=spec.environment)
                 for spec in specs}
    reset = ServiceClient(ros_node.node, ros_node.executor, ResetEpisode, '/sim/reset_episode', resend_after_s=2.0)
    enable = ServiceClient(ros_node.node, ros_node.executor, SetBool, '/policy_node/enable', resend_after_s=2.0)
    reset.wait_until_available(timeout_s=60)
    enable.wait_until_available(timeout_s=60)
    return processes, reset, enable


def _lockstep_episode(ros_node, reset, enable, joint_states: list, results: list):
    """Run the open_door episode of seed 100000 under the policy, from reset to its end.

    Returns its EpisodeResult, the joint positions by step number and the wall seconds it took.
    """
    def call(client, request):
        answer = client.call(request, timeout_s=20)
        assert answer.success, answer.message

    call(enable, SetBool.Request(data=False))
    call(reset, ResetEpisode.Request(task='open_door', seed=100_000))
    joint_states.clear()
    results.clear()
    started = time.monotonic()
    call(enable, SetBool.Request(data=True))
    ros_node.spin_until(lambda: any(r.reason != 'reset' for r in results), timeout=120,
                        what='the end of the lockstep episode')
    wall_seconds = time.monotonic() - started
    result = next(r for r in results if r.reason != 'reset')
    start = _seconds(result.header.stamp) - result.duration
    return result, {round((_seconds(m.header.stamp) - start) / 0.1): m.position for m in joint_states}, wall_seconds


def test_lockstep_episodes_repeat_exactly_and_every_step_waits_for_the_policy(artifacts, ros_processes, ros_node):
    """In lockstep the same seed gives the same rollout through the nodes, whatever the timing.

    Every step but an episode's first (which waits out lockstep_timeout for the enabled policy) is
    taken on the policy's command, faster than real time.
    """
    joint_states = ros_node.collect(JointState, '/joint_states')
    results = ros_node.collect(EpisodeResult, '/sim/episode_result')
    processes, reset, enable = _start_lockstep_graph(artifacts['encoder'], artifacts['policy'], ros_processes, ros_node)
    rollouts, wall_seconds = [], []
    for _ in range(2):
        result, rollout, seconds = _lockstep_episode(ros_node, reset, enable, joint_states, results)
        rollouts.append(rollout)
        wall_seconds.append(seconds)
    steps = sorted(set(rollouts[0]) & set(rollouts[1]) & set(range(1, result.steps + 1)))
    assert len(steps) > 0.9 * result.steps, 'joint_states of the episodes went missing'
    first, second = (np.array([rollout[k] for k in steps]) for rollout in rollouts)
    assert np.ptp(first, axis=0).max() > 0.05, 'the policy did not move the arm'
    np.testing.assert_allclose(second, first, atol=1e-6)
    assert max(wall_seconds) < result.duration, f'episodes took {wall_seconds} s, more than real time'
    # sim_node logs an episode's end after publishing its result: wait for the second line.
    ending = re.escape(f'after {result.steps} steps (1 waited out lockstep_timeout)')
    processes['sim_node'].wait_for_output(f'(?s){ending}.*{ending}', timeout=10.0)
    assert processes['sim_node'].output().count(f'after {result.steps} steps (1 waited out lockstep_timeout)') == 2


# train_policy --set values that train each head in seconds on the three sample bags: the test is
# about running the artifact through the nodes, not about its quality.
TINY_HEAD_SETTINGS = {
    'vqbet': {'vq_epochs': 20, 'epochs': 20, 'batch_size': 64},
    'diffusion': {'down_dims': '[32,64]', 'diffusion_step_embed_dim': 32, 'epochs': 20, 'batch_size': 64,
                  'warmup_steps': 0, 'learning_rate': 1e-3},
}


@pytest.mark.parametrize('name', sorted(TINY_HEAD_SETTINGS))
def test_vqbet_and_diffusion_artifacts_drive_the_simulated_xarm_through_the_nodes(name, artifacts, ros_processes,
                                                                                  ros_node):
    """policy_node runs a VQ-BeT or Diffusion artifact unchanged: in lockstep, the arm moves on its commands."""
    policy_dir = artifacts['root'] / f'policy_{name}'
    settings = [argument for key, value in TINY_HEAD_SETTINGS[name].items() for argument in ('--set', f'{key}={value}')]
    _run(['train_policy', '--dataset', str(artifacts['root'] / 'dataset'), '--encoder', str(artifacts['encoder']),
          '--policy', name, *settings, '--output', str(policy_dir)])
    joint_states = ros_node.collect(JointState, '/joint_states')
    results = ros_node.collect(EpisodeResult, '/sim/episode_result')
    processes, reset, enable = _start_lockstep_graph(artifacts['encoder'], policy_dir / 'policy.pt',
                                                     ros_processes, ros_node)
    result, rollout, _ = _lockstep_episode(ros_node, reset, enable, joint_states, results)

    assert (result.task, result.seed) == ('open_door', 100_000)
    assert result.reason in ('success', 'timeout') and result.steps > 0
    positions = np.array([rollout[k] for k in sorted(rollout) if 1 <= k <= result.steps])
    assert len(positions) > 0.9 * result.steps, 'joint_states of the episode went missing'
    assert np.ptp(positions, axis=0).max() > 0.05, f'the arm did not follow the {name} policy'
    # Every step is taken on the policy's command, not on the timeout (the first waits for the enabled policy).
    # sim_node logs the episode's end around when it publishes the result: wait for the line.
    waited = processes['sim_node'].wait_for_output(
        rf'after {result.steps} steps \((\d+) waited out lockstep_timeout\)', timeout=10).group(1)
    assert int(waited) < 0.25 * result.steps, (result.steps, waited)


def test_evaluate_reports_success_rate_table_and_plots(artifacts, capsys):
    """evaluate, called in-process, writes results that agree with each other and restores os.environ."""
    output = artifacts['root'] / 'evaluation'
    environment_before = dict(os.environ)
    exit_code = evaluate_main([
        '--robot', 'xarm', '--task', 'open_door', '--encoder', str(artifacts['encoder']),
        '--policy', str(artifacts['policy']), '--episodes', '2', '--real-time-factor', '3',
        '--rollout-sheets', '1', '--output', str(output)])
    printed = capsys.readouterr()
    assert exit_code == 0, printed.out[-3000:] + printed.err[-3000:]
    assert dict(os.environ) == environment_before, 'evaluate must leave the environment as it found it'
    with open(output / 'episodes.csv') as f:
        episodes = list(csv.DictReader(f))
    assert [(e['task'], int(e['seed'])) for e in episodes] == [('open_door', 100_000), ('open_door', 100_001)]
    assert all(int(e['steps']) > 0 and e['reason'] in ('success', 'timeout') for e in episodes), episodes
    successes = [e['success'] == 'True' for e in episodes]
    assert successes == [e['reason'] == 'success' for e in episodes], episodes
    summary = json.loads((output / 'summary.json').read_text())
    [task] = summary['tasks']
    assert (task['task'], task['episodes'], task['successes']) == ('open_door', 2, sum(successes)), task
    assert task['success_rate'] == pytest.approx(sum(successes) / 2), (task, episodes)
    for png in ('success_rate.png', 'rollouts.png'):
        assert (output / png).stat().st_size > 1000
    assert 'open_door' in printed.out


def test_open_loop_replays_demonstrations_through_the_nodes_and_compares_the_commands(artifacts, capsys):
    """The policy's commands (evaluate --open-loop) on replayed demonstrations, against the recorded ones.

    The kNN policy was trained on these demonstrations: its commands follow the recording much more
    closely than holding the first recorded command would.
    """
    from dynamo_bringup.open_loop import read_demonstration
    output = artifacts['root'] / 'open_loop'
    bags = SAMPLE_BAGS[:2]
    exit_code = evaluate_main(['--open-loop', *map(str, bags), '--robot', 'xarm', '--output', str(output),
                               '--encoder', str(artifacts['encoder']), '--policy', str(artifacts['policy'])])
    printed = capsys.readouterr()
    assert exit_code == 0, printed.out[-3000:] + printed.err[-3000:]
    with open(output / 'open_loop.csv') as f:
        episodes = list(csv.DictReader(f))
    assert [Path(e['bag']).name for e in episodes] == [bag.name for bag in bags]
    summary = json.loads((output / 'open_loop.json').read_text())
    assert summary['joints'] == [f'joint{i}' for i in range(1, 8)] + ['drive_joint']
    for episode, bag in zip(episodes, bags):
        recorded = read_demonstration(bag, ['/joint_states'], ARM_AND_GRIPPER, 0).recorded
        frames = len(recorded[ARM][0])
        assert int(episode['commands']) >= 0.9 * 2 * frames, episode   # arm and gripper answer every frame
        holding = np.mean(np.abs(np.concatenate([values - values[0] for _, values in recorded.values()], axis=1)))
        assert float(episode['mae']) < 0.5 * holding, (episode, holding)
    assert (output / 'open_loop.png').stat().st_size > 1000
    assert 'open_door_00000' in printed.out


def test_evaluate_exits_1_when_the_graph_does_not_come_up(artifacts):
    """A graph that does not answer in --startup-timeout ends evaluate with one error line, exit code 1."""
    output = artifacts['root'] / 'evaluation_no_startup'
    completed = subprocess.run(
        [resolve_executable('evaluate'), '--robot', 'xarm', '--task', 'open_door',
         '--encoder', str(artifacts['encoder']), '--policy', str(artifacts['policy']), '--episodes', '1',
         '--startup-timeout', '0.1', '--output', str(output)],
        capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert 'evaluate: error: service /sim/reset_episode not available after 0.1 s' in completed.stderr
    assert 'Traceback' not in completed.stderr, completed.stderr


def test_sample_bags_convert_to_one_episode_each_with_arm_and_gripper_actions(artifacts):
    """convert_bags turns every sample bag into an episode whose actions are the arm and gripper commands."""
    dataset = LeRobotDataset(artifacts['root'] / 'dataset')
    assert dataset.num_episodes == len(SAMPLE_BAGS)
    assert dataset.feature_names('action') == [f'joint{i}' for i in range(1, 8)] + ['drive_joint']


def test_evaluate_lockstep_runs_episodes_as_fast_as_the_nodes(artifacts):
    output = artifacts['root'] / 'evaluation_lockstep'
    completed = subprocess.run(
        [resolve_executable('evaluate'), '--robot', 'xarm', '--task', 'open_door',
         '--encoder', str(artifacts['encoder']), '--policy', str(artifacts['policy']), '--episodes', '2',
         '--lockstep', '--real-time-factor', '0', '--rollout-sheets', '0', '--output', str(output)],
        capture_output=True, text=True, timeout=400)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads((output / 'summary.json').read_text())
    assert summary['lockstep'] is True and summary['tasks'][0]['episodes'] == 2
    assert summary['seconds_per_episode'] < 9.0, 'slower than the 9 s real-time episode'
    # Most steps were taken on the policy's command (the first of each episode waits out the
    # timeout; on a loaded machine a few more may), not on the timeout.
    sim_log = (output / 'logs' / 'sim_node.log').read_text()
    ends = re.findall(r'episode (?:success|timeout): .* after (\d+) steps \((\d+) waited out lockstep_timeout\)',
                      sim_log)
    assert len(ends) >= 2 and all(int(waited) < 0.25 * int(steps) for steps, waited in ends[-2:]), ends
    assert 'lockstep simulation' in completed.stdout
