"""Which command topic carries which of the policy's actions (ROS-free, validated up front).

One action vector can drive several controllers: for the xArm, `joint1..joint7` go to
/xarm7_traj_controller/joint_trajectory and `drive_joint` to
/xarm_gripper_traj_controller/joint_trajectory (with follow_joint_trajectory, to the same
controllers' actions <controller>/follow_joint_trajectory); for the Allegro hand, 16 positions go
to its forward controller and the mount's to another. Only a twist is always one message. The
node's parameters give the topics (`command_topics`, action names for follow_joint_trajectory)
and, per topic, a comma-separated list of action names (`command_joints`); with no
`command_joints`, the single topic carries every action in the policy's order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COMMAND_TYPES = ('joint_trajectory', 'float64_multi_array', 'twist_stamped', 'follow_joint_trajectory')
TOLERANCE_PARAMETERS = ('trajectory_path_tolerance', 'trajectory_goal_tolerance', 'trajectory_goal_time_tolerance')
TWIST_ACTION_NAMES = ('linear.x', 'linear.y', 'linear.z', 'angular.x', 'angular.y', 'angular.z')


class ParameterError(ValueError):
    """A node parameter has an invalid value; `parameter` names it."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f'parameter {parameter!r}: {message}')
        self.parameter = parameter


@dataclass(frozen=True)
class CommandTarget:
    topic: str
    names: tuple[str, ...]     # joint (or twist component) names, in message order
    indices: tuple[int, ...]   # their positions in the action vector


def make_command_layout(command_type: str, topics: list[str], joint_groups: list[str],
                        action_names: list[str]) -> list[CommandTarget]:
    if command_type not in COMMAND_TYPES:
        raise ParameterError('command_type', f'{command_type!r} is not one of {list(COMMAND_TYPES)}')
    if not topics or any(not topic.strip() for topic in topics):
        raise ParameterError('command_topics', f'needs at least one non-empty topic name, got {topics}')
    if len(set(topics)) != len(topics):
        raise ParameterError('command_topics', f'lists a topic twice: {topics}')
    if command_type == 'twist_stamped' and len(topics) != 1:
        # ForwardCommandControllers, like trajectory controllers, may split the actions (e.g. an
        # Allegro hand and the arm carrying it); one twist is one command.
        raise ParameterError('command_topics', f'{command_type} commands go to exactly one topic, got {topics}')
    if joint_groups:
        if len(joint_groups) != len(topics):
            raise ParameterError('command_joints', f'has {len(joint_groups)} entries but command_topics has '
                                 f'{len(topics)}; give one comma-separated name list per topic')
        groups = [[name.strip() for name in group.split(',') if name.strip()] for group in joint_groups]
    elif len(topics) == 1:
        groups = [list(action_names)]
    else:
        raise ParameterError('command_joints', f'is required when there are several command_topics ({topics})')
    targets = []
    for topic, group in zip(topics, groups):
        if not group:
            raise ParameterError('command_joints', f'the list for {topic} is empty')
        unknown = [name for name in group if name not in action_names]
        if unknown:
            raise ParameterError('command_joints', f'{unknown} (for {topic}) are not actions of the policy '
                                 f'{list(action_names)}')
        targets.append(CommandTarget(topic, tuple(group), tuple(action_names.index(name) for name in group)))
    used = [name for target in targets for name in target.names]
    if len(set(used)) != len(used):
        raise ParameterError('command_joints', f'an action is sent to two topics: {used}')
    if command_type == 'twist_stamped' and sorted(used) != sorted(TWIST_ACTION_NAMES):
        raise ParameterError('command_type', f'twist_stamped needs the policy actions {list(TWIST_ACTION_NAMES)}, '
                             f'the command uses {used}')
    return targets


def trajectory_tolerances(trajectory_goals: bool, action_dim: int, path, goal, goal_time: float):
    """Validate policy_node's trajectory_* parameters; return (path, goal) per action (None: unset) and goal_time.

    They apply only to follow_joint_trajectory; tolerances are 1 or action_dim values > 0, goal_time >= 0.
    """
    given = [name for name, is_set in zip(TOLERANCE_PARAMETERS, (len(path) > 0, len(goal) > 0, goal_time != 0))
             if is_set]
    if given and not trajectory_goals:
        raise ParameterError(given[0], 'applies only to command_type follow_joint_trajectory')
    per_action = []
    for name, values in zip(TOLERANCE_PARAMETERS, (path, goal)):
        values = np.asarray(values, np.float64)
        if values.size and (values.size not in (1, action_dim) or not np.all(values > 0)):
            raise ParameterError(name, f'needs 1 or {action_dim} values > 0, got {values.tolist()}')
        per_action.append(np.broadcast_to(values, (action_dim,)) if values.size else None)
    if not goal_time >= 0:
        raise ParameterError('trajectory_goal_time_tolerance', f'must be >= 0, got {goal_time}')
    return per_action[0], per_action[1], goal_time
