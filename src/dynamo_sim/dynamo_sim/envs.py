"""ROS-free simulated robots: the xArm7 kitchen and the Allegro hand scene, one env API for both.

    env = make_env("open_door", seed=0, image_size=96)
    env.reset(seed=3)                       # initial object poses drawn from the seed
    env.step(targets)                       # joint position targets in env.joint_names order
    image = env.render("front")             # uint8 (H, W, 3)
    env.joint_positions(); env.success(); env.object_state(); env.time

    make_env("open_door", menagerie_path="~/mujoco_menagerie")  # drawn with the Menagerie's meshes

Commands are joint position targets, as sent to a ros2_control position/trajectory controller:
the robot's position actuators track them during `substeps` physics steps (one control period,
1/control_rate seconds). The same seed gives the same states and the same images.

With `menagerie_path`, a local MuJoCo Menagerie checkout (ufactory_xarm7/xarm7.xml,
wonik_allegro/right_hand.xml and their assets), the robot is drawn with the Menagerie's detailed
meshes; physics, joints, cameras and tasks stay ours (models.with_menagerie_visuals).
"""
from __future__ import annotations

import mujoco
import numpy as np

from dynamo_sim import interfaces, models

TASKS = {
    'open_door': 'xarm7',
    'push_bottle': 'xarm7',
    'bottle_to_shelf': 'xarm7',
    'lift_object': 'allegro_hand',
    'open_hinged_door': 'allegro_hand',
}
TASK_DESCRIPTIONS = {
    'open_door': 'open the fridge door',
    'push_bottle': 'push the red bottle onto the green target',
    'bottle_to_shelf': 'put the red bottle on the shelf',
    'lift_object': 'lift the red block',
    'open_hinged_door': 'open the cabinet door',
}
PHYSICS_TIMESTEP = 0.002


class SimError(ValueError):
    """Bad input to the simulator; the message names it.

    An unknown task, a wrong command size, a Menagerie path without the robot's model.
    """


def _quat_upright(quat: np.ndarray) -> float:
    """Z component of the body's z axis in the world (1 = upright)."""
    w, x, y, z = quat
    return 1.0 - 2.0 * (x * x + y * y)


class SimEnv:
    """Common stepping, rendering and bookkeeping; subclasses define the scene and the tasks."""

    robot_type: str = ''
    camera_names = ('front',)
    tasks: tuple[str, ...] = ()
    max_episode_steps_by_task: dict[str, int] = {}

    def __init__(self, task: str, seed: int = 0, image_size: int = 96, control_rate: float = 10.0,
                 menagerie_path=None):
        if task not in self.tasks:
            raise SimError(f"unknown task {task!r} for {self.robot_type}; known: {', '.join(self.tasks)}")
        if control_rate <= 0:
            raise SimError(f'control_rate must be > 0, got {control_rate}')
        self.task = task
        self.image_size = int(image_size)
        self.control_rate = float(control_rate)
        self.substeps = max(1, int(round(1.0 / (self.control_rate * PHYSICS_TIMESTEP))))
        xml = self._xml(self.image_size)
        if menagerie_path is None:
            self.model = mujoco.MjModel.from_xml_string(xml)
        else:
            try:
                self.model = models.with_menagerie_visuals(xml, self.robot_type, menagerie_path)
            except models.MenagerieError as error:
                raise SimError(str(error)) from None
        self.data = mujoco.MjData(self.model)
        self._renderer: mujoco.Renderer | None = None
        model_joints = [self._model_joint(n) for n in self.joint_names]
        self._qpos_adr = np.array([self.model.joint(n).qposadr[0] for n in model_joints])
        self._qvel_adr = np.array([self.model.joint(n).dofadr[0] for n in model_joints])
        self.lower = np.array([self._limits()[n][0] for n in self.joint_names])
        self.upper = np.array([self._limits()[n][1] for n in self.joint_names])
        self.seed = int(seed)
        self.steps = 0
        self.reset(seed)

    # --- scene specifics (subclasses) -------------------------------------------------------
    joint_names: list[str] = []
    object_state_names: list[str] = []

    def _xml(self, image_size: int) -> str:
        raise NotImplementedError

    def _limits(self) -> dict[str, tuple[float, float]]:
        raise NotImplementedError

    def _model_joint(self, name: str) -> str:
        """Return the MJCF joint whose qpos/qvel a state joint reads (the same name unless a subclass maps it)."""
        return name

    def _place(self, rng: np.random.Generator) -> None:
        """Write the robot's home state and the task's random initial object poses into data/model."""
        raise NotImplementedError

    def _apply_targets(self, targets: np.ndarray) -> None:
        raise NotImplementedError

    def home_targets(self) -> np.ndarray:
        """Joint targets that hold the robot's start pose."""
        raise NotImplementedError

    def success(self) -> bool:
        raise NotImplementedError

    def object_state(self) -> np.ndarray:
        raise NotImplementedError

    # --- common API ---------------------------------------------------------------------------
    @property
    def description(self) -> str:
        return TASK_DESCRIPTIONS[self.task]

    @property
    def max_episode_steps(self) -> int:
        return self.max_episode_steps_by_task[self.task]

    @property
    def time(self) -> float:
        """Sim time in seconds since the episode started."""
        return float(self.data.time)

    @property
    def dt(self) -> float:
        return self.substeps * PHYSICS_TIMESTEP

    def reset(self, seed: int | None = None, task: str | None = None) -> None:
        if task is not None:
            if task not in self.tasks:
                raise SimError(f"unknown task {task!r} for {self.robot_type}; known: {', '.join(self.tasks)}")
            self.task = task
        if seed is not None:
            self.seed = int(seed)
        mujoco.mj_resetData(self.model, self.data)
        self._place(np.random.default_rng(self.seed))
        mujoco.mj_forward(self.model, self.data)
        self.steps = 0

    def step(self, targets) -> None:
        """Hold the joint position targets (env.joint_names order) for one control period."""
        targets = np.asarray(targets, dtype=float).reshape(-1)
        if targets.shape[0] != len(self.joint_names):
            raise SimError(
                f"{self.robot_type} expects {len(self.joint_names)} targets ({', '.join(self.joint_names)}), "
                f"got {targets.shape[0]}"
            )
        if not np.all(np.isfinite(targets)):
            raise SimError(f'non-finite joint targets: {targets}')
        self._apply_targets(np.clip(targets, self.lower, self.upper))
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        self.steps += 1

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qpos_adr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._qvel_adr].copy()

    def joint_efforts(self) -> np.ndarray:
        return self.data.qfrc_actuator[self._qvel_adr].copy()

    def render(self, camera: str = 'front') -> np.ndarray:
        if camera not in self.camera_names:
            raise SimError(f"unknown camera {camera!r}; known: {', '.join(self.camera_names)}")
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, self.image_size, self.image_size)
        self._renderer.update_scene(self.data, camera)
        return self._renderer.render().copy()

    def camera_intrinsics(self, camera: str = 'front') -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) in pixels of the square pinhole image render() returns."""
        fovy = np.deg2rad(self.model.cam(camera).fovy[0])
        f = 0.5 * self.image_size / np.tan(0.5 * fovy)
        c = 0.5 * self.image_size
        return f, f, c, c

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # helpers
    def _set_joint(self, name: str, value: float) -> None:
        self.data.qpos[self.model.joint(name).qposadr[0]] = value

    def _joint(self, name: str) -> float:
        return float(self.data.qpos[self.model.joint(name).qposadr[0]])

    def _set_free_body(self, joint: str, pos, yaw: float = 0.0) -> None:
        adr = self.model.joint(joint).qposadr[0]
        self.data.qpos[adr:adr + 3] = pos
        self.data.qpos[adr + 3:adr + 7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]

    def _free_body(self, joint: str) -> tuple[np.ndarray, np.ndarray]:
        adr = self.model.joint(joint).qposadr[0]
        return self.data.qpos[adr:adr + 3].copy(), self.data.qpos[adr + 3:adr + 7].copy()


def tool_down_rotation(yaw: float) -> np.ndarray:
    """Rotation matrix of a tool pointing down (-z) turned by `yaw` about the vertical."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


class XArmKitchenEnv(SimEnv):
    """UFactory xArm7 with a parallel gripper in a kitchen: fridge with a door, shelf, bottle, target."""

    robot_type = 'xarm7'
    tasks = ('open_door', 'push_bottle', 'bottle_to_shelf')
    max_episode_steps_by_task = {'open_door': 90, 'push_bottle': 90, 'bottle_to_shelf': 100}
    arm_joint_names = list(interfaces.XARM_JOINTS)
    gripper_joint_names = [interfaces.XARM_GRIPPER_JOINT]
    joint_names = arm_joint_names + gripper_joint_names
    object_state_names = [
        'bottle_x', 'bottle_y', 'bottle_z', 'bottle_qw', 'bottle_qx', 'bottle_qy', 'bottle_qz',
        'door_angle', 'fridge_x', 'fridge_y', 'target_x', 'target_y', 'shelf_x', 'shelf_y',
    ]
    home_tcp = np.array([0.3, 0.0, 0.3])
    _home_q: np.ndarray | None = None

    def _xml(self, image_size):
        return models.xarm_kitchen_xml(image_size)

    def _limits(self):
        return {**models.XARM_LIMITS, interfaces.XARM_GRIPPER_JOINT: models.XARM_GRIPPER_RANGE}

    def __init__(self, *args, **kwargs):
        self._ik_data = None
        super().__init__(*args, **kwargs)

    # The finger slides are not state joints of the real robot; drive_joint is computed from them.
    def joint_positions(self) -> np.ndarray:
        q = self.data.qpos[self._qpos_adr].copy()
        q[-1] = self._drive_position()
        return q

    def joint_velocities(self) -> np.ndarray:
        v = self.data.qvel[self._qvel_adr].copy()
        v[-1] = self.data.qvel[self._finger_dofs].mean() / models.XARM_FINGER_TRAVEL_PER_DRIVE
        return v

    def joint_efforts(self) -> np.ndarray:
        e = self.data.qfrc_actuator[self._qvel_adr].copy()
        e[-1] = self.data.qfrc_actuator[self._finger_dofs].mean()  # finger force, N
        return e

    @property
    def _finger_dofs(self) -> list[int]:
        return [self.model.joint(f'{side}_finger_joint').dofadr[0] for side in ('left', 'right')]

    def _drive_position(self) -> float:
        left = self._joint('left_finger_joint')
        right = self._joint('right_finger_joint')
        return 0.5 * (left + right) / models.XARM_FINGER_TRAVEL_PER_DRIVE

    def _model_joint(self, name):
        # drive_joint reads the left finger slide's address; joint_positions() rescales it.
        return 'left_finger_joint' if name == interfaces.XARM_GRIPPER_JOINT else name

    def _apply_targets(self, targets):
        self.data.ctrl[:7] = targets[:7]
        self.data.ctrl[7:9] = targets[7] * models.XARM_FINGER_TRAVEL_PER_DRIVE

    def home_targets(self) -> np.ndarray:
        return np.concatenate([self.home_q(), [0.0]])

    def home_q(self) -> np.ndarray:
        if XArmKitchenEnv._home_q is None:
            guess = np.array([0.0, -0.2, 0.0, 0.6, 0.0, 0.8, 0.0])
            XArmKitchenEnv._home_q = self.solve_ik(self.home_tcp, tool_down_rotation(0.0), guess)
        return XArmKitchenEnv._home_q.copy()

    def _place(self, rng):
        m = self.model
        q = self.home_q()
        for name, value in zip(self.arm_joint_names, q):
            self._set_joint(name, value)
        self.data.ctrl[:7] = q
        self.data.ctrl[7:9] = 0.0
        fridge = np.array([0.6, 0.28]) + rng.uniform([-0.03, -0.03], [0.03, 0.03])
        shelf = np.array([0.45, -0.3])
        target = np.array([0.62, 0.0])
        bottle = np.array([0.42, -0.02])
        if self.task == 'open_door':
            bottle = shelf + np.array([-0.12, 0.0]) + rng.uniform(-0.02, 0.02, 2)
        elif self.task == 'push_bottle':
            bottle = np.array([0.40, 0.0]) + rng.uniform([-0.03, -0.06], [0.03, 0.06])
            target = bottle + np.array([rng.uniform(0.15, 0.2), rng.uniform(-0.06, 0.06)])
        elif self.task == 'bottle_to_shelf':
            bottle = np.array([0.42, 0.0]) + rng.uniform([-0.03, -0.06], [0.03, 0.04])
            shelf = np.array([0.45, -0.28]) + rng.uniform([-0.03, -0.03], [0.03, 0.03])
        fx, fy, _ = models.FRIDGE_HALF
        m.body('fridge').pos[:2] = fridge
        m.body('door').pos[:2] = fridge + np.array([-fx, fy])
        m.body('shelf').pos[:2] = shelf
        m.body('target').pos[:2] = target
        bottle_yaw = rng.uniform(-np.pi, np.pi)
        self._set_free_body('bottle_free', [bottle[0], bottle[1], models.BOTTLE_HALF_HEIGHT], bottle_yaw)

    def object_state(self) -> np.ndarray:
        pos, quat = self._free_body('bottle_free')
        m = self.model
        return np.concatenate([
            pos, quat, [self._joint('door_hinge')], m.body('fridge').pos[:2], m.body('target').pos[:2],
            m.body('shelf').pos[:2],
        ])

    def success(self) -> bool:
        pos, quat = self._free_body('bottle_free')
        upright = _quat_upright(quat) > 0.9
        if self.task == 'open_door':
            return self._joint('door_hinge') > 0.9
        if self.task == 'push_bottle':
            target = self.model.body('target').pos[:2]
            return bool(upright and np.linalg.norm(pos[:2] - target) < 0.04)
        shelf = self.model.body('shelf').pos[:2]
        on_shelf = (
            np.all(np.abs(pos[:2] - shelf) < np.array(models.SHELF_HALF) - 0.005)
            and pos[2] > models.SHELF_HEIGHT + models.BOTTLE_HALF_HEIGHT - 0.01
        )
        released = self._drive_position() < 0.4
        return bool(upright and on_shelf and released)

    # --- kinematics for the scripted experts --------------------------------------------------
    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        site = self.data.site('tcp')
        return site.xpos.copy(), site.xmat.reshape(3, 3).copy()

    def solve_ik(self, pos, rot, q_init, iterations: int = 60, tol: float = 1e-4) -> np.ndarray:
        """Damped least squares IK of the tool centre point (position + orientation) on a scratch copy."""
        m = self.model
        if self._ik_data is None:
            self._ik_data = mujoco.MjData(m)
        d = self._ik_data
        adr = self._qpos_adr[:7]
        dof = self._qvel_adr[:7]
        q = np.array(q_init, dtype=float)
        site = m.site('tcp').id
        jacp = np.zeros((3, m.nv))
        jacr = np.zeros((3, m.nv))
        lo, hi = self.lower[:7], self.upper[:7]
        for _ in range(iterations):
            d.qpos[adr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            cur_p = d.site_xpos[site]
            cur_r = d.site_xmat[site].reshape(3, 3)
            err_p = pos - cur_p
            err_r = 0.5 * sum(np.cross(cur_r[:, i], rot[:, i]) for i in range(3))
            err = np.concatenate([err_p, 0.5 * err_r])
            if np.linalg.norm(err) < tol:
                break
            mujoco.mj_jacSite(m, d, jacp, jacr, site)
            jac = np.vstack([jacp[:, dof], 0.5 * jacr[:, dof]])
            dq = jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(6), err)
            q = np.clip(q + dq, lo, hi)
        return q


class AllegroEnv(SimEnv):
    """Wonik Allegro hand on a Cartesian mount: lift a block, open a cabinet door."""

    robot_type = 'allegro_hand'
    tasks = ('lift_object', 'open_hinged_door')
    max_episode_steps_by_task = {'lift_object': 70, 'open_hinged_door': 80}
    hand_joint_names = list(interfaces.ALLEGRO_JOINTS)
    mount_joint_names = list(interfaces.ALLEGRO_MOUNT_JOINTS)
    joint_names = hand_joint_names + mount_joint_names
    object_state_names = [
        'object_x', 'object_y', 'object_z', 'object_qw', 'object_qx', 'object_qy', 'object_qz',
        'door_angle', 'cabinet_x', 'cabinet_y',
    ]
    home_hand = np.array([0.4, 0.0, 0.1, 0.1] + [0.0, 0.1, 0.1, 0.1] * 3)  # thumb, index, middle, ring
    home_mount = np.array(models.ALLEGRO_MOUNT_HOME)

    def _xml(self, image_size):
        return models.allegro_scene_xml(image_size)

    def _limits(self):
        return {**models.ALLEGRO_LIMITS, **models.ALLEGRO_MOUNT_LIMITS}

    @property
    def _actuator_order(self) -> np.ndarray:
        return np.array([self.model.actuator(n).id for n in self.joint_names])

    def _apply_targets(self, targets):
        self.data.ctrl[self._actuator_order] = targets

    def home_targets(self) -> np.ndarray:
        return np.concatenate([self.home_hand, self.home_mount])

    def _place(self, rng):
        m = self.model
        home = self.home_targets()
        for name, value in zip(self.joint_names, home):
            self._set_joint(name, value)
        self._apply_targets(home)
        obj = np.array([0.09, -0.03]) + rng.uniform([-0.025, -0.04], [0.025, 0.04])
        cabinet = np.array(models.CABINET_POS)
        if self.task == 'open_hinged_door':
            cabinet = cabinet + rng.uniform([-0.02, -0.03], [0.02, 0.03])
            obj = np.array([0.08, -0.12])
        hx, hy, _ = models.CABINET_HALF
        m.body('cabinet').pos[:2] = cabinet
        m.body('cabinet_door').pos[:2] = cabinet + np.array([-hx, hy])
        yaw = rng.uniform(-0.3, 0.3) if self.task == 'lift_object' else 0.0
        self._set_free_body('object_free', [obj[0], obj[1], models.LIFT_OBJECT_HALF[2]], yaw)

    def object_state(self) -> np.ndarray:
        pos, quat = self._free_body('object_free')
        return np.concatenate([pos, quat, [self._joint('cabinet_hinge')], self.model.body('cabinet').pos[:2]])

    def success(self) -> bool:
        if self.task == 'lift_object':
            pos, _ = self._free_body('object_free')
            return bool(pos[2] > models.LIFT_OBJECT_HALF[2] + 0.06)
        return self._joint('cabinet_hinge') > 0.8


def env_class(task: str) -> type[SimEnv]:
    if task not in TASKS:
        raise SimError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return XArmKitchenEnv if TASKS[task] == 'xarm7' else AllegroEnv


def make_env(task: str, seed: int = 0, image_size: int = 96, control_rate: float = 10.0,
             menagerie_path=None) -> SimEnv:
    """Build the simulated robot scene that runs `task` (see TASKS), reset with `seed`.

    It is drawn with the meshes of the MuJoCo Menagerie checkout at `menagerie_path` if given.
    """
    return env_class(task)(task, seed=seed, image_size=image_size, control_rate=control_rate,
                           menagerie_path=menagerie_path)
