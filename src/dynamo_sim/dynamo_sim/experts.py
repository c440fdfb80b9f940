"""Scripted experts: privileged-state waypoint plans turned into joint targets every control step.

    expert = make_expert(env, seed)          # right after env.reset(...)
    while not expert.done:
        env.step(expert.act())

Each plan is a list of segments (end pose, hand/gripper command, number of control steps); the
tool (xArm: tool centre point pose, solved to joint targets with damped least squares IK on the
MuJoCo Jacobian; Allegro: mount position and finger joints directly) moves linearly from segment to
segment. The seed varies segment durations, approach offsets and pauses, so demonstrations differ
in timing and path like human teleoperation does, while the task's initial state comes from the env.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynamo_sim import models
from dynamo_sim.envs import AllegroEnv, SimEnv, XArmKitchenEnv, tool_down_rotation

GRIPPER_OPEN = 0.0
GRIPPER_CLOSED = 0.85


@dataclass
class Segment:
    """Move linearly to `pose` while commanding `effector`, over `steps` control steps.

    pose: xArm x, y, z, yaw of the tool; Allegro mount x, y, z. effector: xArm [drive_joint];
    Allegro the 16 hand joints.
    """

    pose: np.ndarray
    effector: np.ndarray
    steps: int


class WaypointExpert:
    """Plays a segment plan; `act()` gives the next joint targets, `done` once the plan is over."""

    def __init__(self, env: SimEnv, rng: np.random.Generator, segments: list[Segment], start_pose, start_effector):
        self.env = env
        self.rng = rng
        self._commands = []
        pose, eff = np.asarray(start_pose, float), np.asarray(start_effector, float)
        for seg in segments:
            for k in range(1, seg.steps + 1):
                a = k / seg.steps
                self._commands.append(((1 - a) * pose + a * seg.pose, (1 - a) * eff + a * seg.effector))
            pose, eff = seg.pose, seg.effector
        self._index = 0

    @property
    def done(self) -> bool:
        return self._index >= len(self._commands)

    def __len__(self) -> int:
        return len(self._commands)

    def act(self) -> np.ndarray:
        pose, eff = self._commands[min(self._index, len(self._commands) - 1)]
        self._index += 1
        return self._targets(pose, eff)

    def _targets(self, pose, effector) -> np.ndarray:
        raise NotImplementedError


class XArmExpert(WaypointExpert):
    def __init__(self, env: XArmKitchenEnv, rng, segments):
        self._q = env.joint_positions()[:7]
        start = np.concatenate([env.tcp_pose()[0], [0.0]])
        super().__init__(env, rng, segments, start, [env.joint_positions()[7]])

    def _targets(self, pose, effector):
        self._q = self.env.solve_ik(pose[:3], tool_down_rotation(pose[3]), self._q)
        return np.concatenate([self._q, effector])


class AllegroExpert(WaypointExpert):
    def __init__(self, env: AllegroEnv, rng, segments):
        q = env.joint_positions()
        super().__init__(env, rng, segments, q[16:], q[:16])

    def _targets(self, pose, effector):
        return np.concatenate([effector, pose])


def _steps(rng, nominal: int) -> int:
    return max(2, int(round(nominal * rng.uniform(0.8, 1.25))))


def _pause(rng, pose, effector) -> list[Segment]:
    n = int(rng.integers(0, 3))
    return [_seg(pose, effector, n)] if n else []


def _seg(pose, effector, steps) -> Segment:
    return Segment(np.asarray(pose, float), np.asarray(effector, float), steps)


def _door_hook_point(hinge_xy, standoff_gap_x, radius, angle):
    """Return the world xy of a point `radius` along a door at `angle`, `standoff_gap_x` in front of its face.

    The door's hinge is on +y and it opens towards -x.
    """
    u, v = -standoff_gap_x, -radius
    c, s = np.cos(angle), np.sin(angle)
    return np.asarray(hinge_xy) + np.array([u * c + v * s, -u * s + v * c])


def _xarm_open_door(env: XArmKitchenEnv, rng) -> list[Segment]:
    hinge = env.model.body('door').pos[:2].copy()
    door_face = 0.016
    gap_x = 0.5 * (door_face + models.HANDLE_STANDOFF - 0.007)
    radius = 0.135 + rng.uniform(-0.012, 0.012)
    z_hook = models.HANDLE_HEIGHT - 0.005 + rng.uniform(-0.008, 0.0)  # fingertips 2 cm below the TCP, under the bar
    closed = [GRIPPER_CLOSED]
    p0 = _door_hook_point(hinge, gap_x, radius, 0.0)
    segs = [
        _seg([*p0, z_hook + 0.1 + rng.uniform(0, 0.03), 0.0], closed, _steps(rng, 14)),
        _seg([*p0, z_hook, 0.0], closed, _steps(rng, 7)),
    ]
    segs += _pause(rng, segs[-1].pose, closed)
    final = 1.2 + rng.uniform(0, 0.1)
    n = _steps(rng, 28)
    for k in range(1, n + 1):
        angle = final * k / n
        segs.append(_seg([*_door_hook_point(hinge, gap_x + 0.004, radius, angle), z_hook, -angle], closed, 1))
    end = segs[-1].pose
    segs.append(_seg(end + np.array([0, 0, 0.08, 0]), closed, _steps(rng, 5)))
    return segs


def _xarm_push_bottle(env: XArmKitchenEnv, rng) -> list[Segment]:
    bottle = env.object_state()[:2]
    target = env.model.body('target').pos[:2].copy()
    u = (target - bottle) / np.linalg.norm(target - bottle)
    yaw = float(np.arctan2(u[1], u[0]))
    standoff = models.BOTTLE_RADIUS + 0.015
    start = bottle - u * (standoff + 0.035 + rng.uniform(0, 0.015))
    end = target - u * (standoff - 0.004)
    z = 0.032 + rng.uniform(-0.004, 0.004)
    closed = [GRIPPER_CLOSED]
    segs = [
        _seg([*start, 0.16 + rng.uniform(0, 0.03), yaw], closed, _steps(rng, 13)),
        _seg([*start, z, yaw], closed, _steps(rng, 7)),
    ]
    segs += _pause(rng, segs[-1].pose, closed)
    segs.append(_seg([*end, z, yaw], closed, _steps(rng, 20)))
    segs.append(_seg([*(end - 0.04 * u), z + 0.1, yaw], closed, _steps(rng, 6)))
    return segs


def _xarm_bottle_to_shelf(env: XArmKitchenEnv, rng) -> list[Segment]:
    bottle = env.object_state()[:2]
    shelf = env.model.body('shelf').pos[:2].copy()
    yaw = float(rng.uniform(-0.4, 0.4))
    grasp_z = 0.07 + rng.uniform(-0.005, 0.01)
    above = 0.3 + rng.uniform(0, 0.03)
    place = shelf + rng.uniform(-0.01, 0.01, 2)
    place_z = models.SHELF_HEIGHT + 0.008 + (grasp_z - 0.0)  # bottle bottom just above the board
    o, c = [GRIPPER_OPEN], [GRIPPER_CLOSED]
    segs = [
        _seg([*bottle, 0.2, yaw], o, _steps(rng, 12)),
        _seg([*bottle, grasp_z, yaw], o, _steps(rng, 8)),
        _seg([*bottle, grasp_z, yaw], c, _steps(rng, 5)),
        _seg([*bottle, above, yaw], c, _steps(rng, 8)),
    ]
    segs += _pause(rng, segs[-1].pose, c)
    segs += [
        _seg([*place, above, yaw], c, _steps(rng, 12)),
        _seg([*place, place_z, yaw], c, _steps(rng, 7)),
        _seg([*place, place_z, yaw], o, _steps(rng, 4)),
        _seg([*place, place_z + 0.12, yaw], o, _steps(rng, 5)),
    ]
    return segs


ALLEGRO_TUCKED = np.array([0.0, 1.6, 1.7, 1.6])
ALLEGRO_HOOK = np.array([0.0, 0.9, 0.5, 0.17])  # middle fingertip points down, 0.104 m ahead, 0.105 m below the palm
ALLEGRO_HOOK_TIP = np.array([0.104, 0.0, -0.105])
PALM_TO_MOUNT_Z = 0.018  # the mount joints place the palm centre; palm_center site is its bottom face


def _allegro_lift_object(env: AllegroEnv, rng) -> list[Segment]:
    obj = env.object_state()[:2]
    pre_fingers = np.array([0.0, 0.8, 0.6, 0.4])
    grasp_fingers = np.array([0.0, 1.05, 0.9, 0.7])
    pre_thumb = np.array([1.396, 0.0, 0.2, 0.2])
    grasp_thumb = np.array([1.396, 0.0, 0.7, 0.7])
    # hand targets in interfaces.ALLEGRO_JOINTS order: thumb, index, middle, ring
    pre = np.concatenate([pre_thumb, pre_fingers, pre_fingers, pre_fingers])
    grasp = np.concatenate([grasp_thumb, grasp_fingers, grasp_fingers, pre_fingers])
    # object centre 0.057 m ahead of the palm centre and 0.025 m towards the thumb
    mount_xy = obj - np.array([0.057, 0.025]) + rng.uniform(-0.004, 0.004, 2)
    low = 0.15 + PALM_TO_MOUNT_Z + rng.uniform(-0.005, 0.005)
    segs = [
        _seg([*mount_xy, 0.25 + rng.uniform(0, 0.03)], pre, _steps(rng, 12)),
        _seg([*mount_xy, low], pre, _steps(rng, 8)),
    ]
    segs += _pause(rng, segs[-1].pose, pre)
    segs += [
        _seg([*mount_xy, low], grasp, _steps(rng, 6)),
        _seg([*mount_xy, 0.3], grasp, _steps(rng, 10)),
    ]
    return segs


def _allegro_open_hinged_door(env: AllegroEnv, rng) -> list[Segment]:
    hinge = env.model.body('cabinet_door').pos[:2].copy()
    door_face = 0.012
    gap_x = 0.5 * (door_face + models.CABINET_HANDLE_STANDOFF - 0.006)
    radius = 0.125 + rng.uniform(-0.008, 0.008)
    tip_z = models.CABINET_HANDLE_HEIGHT - 0.022 + rng.uniform(-0.005, 0.005)
    # thumb, index, middle, ring (interfaces.ALLEGRO_JOINTS order): the middle finger hooks, the others tuck away
    hook = np.concatenate([[0.263, 0.0, 0.0, 0.0], ALLEGRO_TUCKED, ALLEGRO_HOOK, ALLEGRO_TUCKED])

    def mount_for_tip(tip_xy, z):
        return np.array([tip_xy[0] - ALLEGRO_HOOK_TIP[0], tip_xy[1], z - ALLEGRO_HOOK_TIP[2] + PALM_TO_MOUNT_Z])

    p0 = _door_hook_point(hinge, gap_x, radius, 0.0)
    segs = [
        _seg(mount_for_tip(p0, tip_z + 0.08 + rng.uniform(0, 0.02)), hook, _steps(rng, 12)),
        _seg(mount_for_tip(p0, tip_z), hook, _steps(rng, 7)),
    ]
    segs += _pause(rng, segs[-1].pose, hook)
    final = 1.05 + rng.uniform(0, 0.1)
    n = _steps(rng, 26)
    for k in range(1, n + 1):
        angle = final * k / n
        segs.append(_seg(mount_for_tip(_door_hook_point(hinge, gap_x + 0.004, radius, angle), tip_z), hook, 1))
    segs.append(_seg(segs[-1].pose + np.array([0, 0, 0.06]), hook, _steps(rng, 4)))
    return segs


_PLANS = {
    'open_door': (XArmExpert, _xarm_open_door),
    'push_bottle': (XArmExpert, _xarm_push_bottle),
    'bottle_to_shelf': (XArmExpert, _xarm_bottle_to_shelf),
    'lift_object': (AllegroExpert, _allegro_lift_object),
    'open_hinged_door': (AllegroExpert, _allegro_open_hinged_door),
}


def make_expert(env: SimEnv, seed: int) -> WaypointExpert:
    """Return the scripted expert for env.task, planned from the env's current (just reset) state."""
    rng = np.random.default_rng([int(seed), 7919])
    expert_cls, plan = _PLANS[env.task]
    return expert_cls(env, rng, plan(env, rng))

