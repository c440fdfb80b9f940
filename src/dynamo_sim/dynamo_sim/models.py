"""MJCF scenes written from published kinematic facts, with simple geometry (nothing downloaded).

UFactory xArm7: joint frames, axes and limits as in UFactory's xarm_description URDF
(joint1 at z=0.267; link3 at (0,-0.293,0); link4 at (0.0525,0,0); link5 at (0.0775,-0.3425,0);
link7 at (0.076,0.097,0); every joint about its local z). The gripper is a parallel gripper whose
opening is commanded like xarm_ros2's gripper: `drive_joint` in [0 (open), 0.85 (closed)],
86 mm stroke. It is realised by two finger slides driven together (finger travel = 0.05 m/rad *
drive_joint), so `drive_joint` is reported as the mean finger travel / 0.05.

Wonik Allegro hand (right): four fingers x four joints, named and ordered as allegro_hand_ros2 (v4)
names them (allegro_hand_hardwares/v4/hardware/readme.md, "Joint Name Definitions"):
ah_joint<finger><joint>, finger 0 = thumb, 1 = index, 2 = middle, 3 = ring, joint 0 = base ..
3 = distal; interfaces.ALLEGRO_JOINTS is that order, the order of its position controller's 16 values. Link
lengths 16.4/54/38.4/26.7(+15.7 tip) mm for the fingers, 17.7/51.4/42.3 mm for the thumb, joint
limits of its URDF (allegro_hand_hardwares/v4/description/urdf). Frames are
ours: the palm faces down (-z), fingers point along +x and flex towards -z; the thumb opposes
from under the palm and flexes towards +x. The hand hangs from a Cartesian mount with three slide
joints (mount_x, mount_y, mount_z) standing in for the arm it is normally carried by.

All robot geoms have contype=2/conaffinity=1 so robot links never collide with each other but do
collide with the world (contype=1/conaffinity=3). Robot bodies are gravity compensated, like a
real position-controlled arm, so position actuators track their targets.

Optionally the robots are drawn with the detailed meshes of a local MuJoCo Menagerie checkout
(with_menagerie_visuals): ufactory_xarm7/xarm7.xml or wonik_allegro/right_hand.xml and the assets
they name are read from it at run time, nothing of them ships here or is downloaded. Their mesh
geoms become visual-only geoms of our links and our own robot geoms are hidden, still colliding:
physics, joints, sites and cameras stay the same, so experts, IK and success checks do too.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from dynamo_sim.interfaces import ALLEGRO_FINGERS, ALLEGRO_JOINTS, ALLEGRO_MOUNT_JOINTS, XARM_JOINTS, allegro_joint

XARM_GRIPPER_RANGE = (0.0, 0.85)
XARM_FINGER_TRAVEL_PER_DRIVE = 0.05  # m of finger travel per unit of drive_joint
XARM_LIMITS = {
    'joint1': (-2 * np.pi, 2 * np.pi),
    'joint2': (-2.059, 2.0944),
    'joint3': (-2 * np.pi, 2 * np.pi),
    'joint4': (-0.19198, 3.927),
    'joint5': (-2 * np.pi, 2 * np.pi),
    'joint6': (-1.69297, np.pi),
    'joint7': (-2 * np.pi, 2 * np.pi),
}
_FINGER_LIMITS = [(-0.47, 0.47), (-0.196, 1.61), (-0.174, 1.709), (-0.227, 1.618)]
_THUMB_LIMITS = [(0.263, 1.396), (-0.105, 1.163), (-0.189, 1.644), (-0.162, 1.719)]
ALLEGRO_LIMITS = {
    allegro_joint(finger, j): (_THUMB_LIMITS if finger == 'thumb' else _FINGER_LIMITS)[j]
    for finger in ALLEGRO_FINGERS for j in range(4)
}
ALLEGRO_MOUNT_LIMITS = {'mount_x': (-0.25, 0.25), 'mount_y': (-0.25, 0.25), 'mount_z': (0.0, 0.35)}

_ROBOT = 'contype="2" conaffinity="1"'
_WORLD = 'contype="1" conaffinity="3"'


def _lookat_xyaxes(pos, target):
    """MJCF camera xyaxes for a camera at `pos` looking at `target` with the world z up."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return ' '.join(f'{v:.5f}' for v in (*right, *up))


def _common_header(name: str, image_size: int) -> str:
    size = max(512, int(image_size))
    return f"""
<mujoco model="{name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <global offwidth="{size}" offheight="{size}"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.55 0.55 0.55" specular="0 0 0"/>
  </visual>
  <default>
    <geom friction="1.0 0.02 0.001" solref="0.004 1" condim="4"/>
    <joint armature="0.05" damping="1"/>
  </default>
  <asset>
    <material name="table" rgba="0.72 0.6 0.45 1"/>
    <material name="floor" rgba="0.3 0.32 0.35 1"/>
    <material name="robot" rgba="0.85 0.85 0.87 1"/>
    <material name="dark" rgba="0.2 0.2 0.22 1"/>
    <material name="white" rgba="0.95 0.95 0.95 1"/>
    <material name="red" rgba="0.85 0.15 0.12 1"/>
    <material name="blue" rgba="0.15 0.3 0.85 1"/>
    <material name="green" rgba="0.15 0.75 0.25 1"/>
    <material name="wood" rgba="0.55 0.38 0.22 1"/>
    <material name="steel" rgba="0.55 0.57 0.6 1"/>
  </asset>
"""


def _table() -> str:
    # Table top at z = 0; the robot stands on it.
    return f"""
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 -0.75" material="floor" {_WORLD}/>
    <geom name="table" type="box" size="0.9 0.8 0.02" pos="0.35 0 -0.02" material="table" friction="0.5 0.01 0.001"
          {_WORLD}/>
"""


def _xarm_body() -> str:
    """xArm7 chain (URDF joint frames), capsule links, parallel gripper on link7 (+z)."""
    j = {n: f'range="{lo:.5f} {hi:.5f}"' for n, (lo, hi) in XARM_LIMITS.items()}
    g = _ROBOT
    return f"""
    <body name="link_base" pos="0 0 0">
      <geom type="cylinder" size="0.065 0.1" pos="0 0 0.1" material="robot" {g}/>
      <body name="link1" pos="0 0 0.267" gravcomp="1">
        <inertial pos="0 0 -0.04" mass="2.4" diaginertia="0.01 0.01 0.006"/>
        <joint name="joint1" axis="0 0 1" {j['joint1']}/>
        <geom type="capsule" fromto="0 0 -0.07 0 0 0.0" size="0.055" material="robot" {g}/>
        <body name="link2" quat="1 -1 0 0" gravcomp="1">
          <inertial pos="0 -0.15 0" mass="2.0" diaginertia="0.02 0.005 0.02"/>
          <joint name="joint2" axis="0 0 1" {j['joint2']}/>
          <geom type="capsule" fromto="0 0 0 0 -0.293 0" size="0.048" material="robot" {g}/>
          <body name="link3" pos="0 -0.293 0" quat="1 1 0 0" gravcomp="1">
            <inertial pos="0.03 0 0" mass="1.6" diaginertia="0.005 0.005 0.004"/>
            <joint name="joint3" axis="0 0 1" {j['joint3']}/>
            <geom type="capsule" fromto="0 0 -0.04 0.0525 0 0" size="0.045" material="robot" {g}/>
            <body name="link4" pos="0.0525 0 0" quat="1 1 0 0" gravcomp="1">
              <inertial pos="0.04 -0.17 0" mass="1.7" diaginertia="0.015 0.004 0.015"/>
              <joint name="joint4" axis="0 0 1" {j['joint4']}/>
              <geom type="capsule" fromto="0 0 0 0.0775 -0.3425 0" size="0.042" material="robot" {g}/>
              <body name="link5" pos="0.0775 -0.3425 0" quat="1 1 0 0" gravcomp="1">
                <inertial pos="0 0 0" mass="1.3" diaginertia="0.004 0.004 0.003"/>
                <joint name="joint5" axis="0 0 1" {j['joint5']}/>
                <geom type="sphere" size="0.045" material="robot" {g}/>
                <body name="link6" quat="1 1 0 0" gravcomp="1">
                  <inertial pos="0.04 0.05 0" mass="1.3" diaginertia="0.003 0.003 0.002"/>
                  <joint name="joint6" axis="0 0 1" {j['joint6']}/>
                  <geom type="capsule" fromto="0 0 0 0.076 0.097 0" size="0.04" material="robot" {g}/>
                  <body name="link7" pos="0.076 0.097 0" quat="1 -1 0 0" gravcomp="1">
                    <inertial pos="0 0 0.05" mass="0.8" diaginertia="0.002 0.002 0.001"/>
                    <joint name="joint7" axis="0 0 1" {j['joint7']}/>
                    <geom type="cylinder" size="0.04 0.02" pos="0 0 0.01" material="dark" {g}/>
                    <geom type="box" size="0.015 0.058 0.035" pos="0 0 0.065" material="dark" {g}/>
                    <site name="tcp" pos="0 0 0.155" size="0.005" rgba="1 0 0 0"/>
                    <body name="left_finger" pos="0 0.0485 0.14" gravcomp="1">
                      <inertial pos="0 0 0" mass="0.05" diaginertia="1e-5 1e-5 1e-5"/>
                      <joint name="left_finger_joint" type="slide" axis="0 -1 0" range="0 0.0425" armature="0.01"
                             damping="2"/>
                      <geom name="left_pad" type="box" size="0.015 0.006 0.035" material="steel"
                            friction="1.5 0.03 0.001" {g}/>
                    </body>
                    <body name="right_finger" pos="0 -0.0485 0.14" gravcomp="1">
                      <inertial pos="0 0 0" mass="0.05" diaginertia="1e-5 1e-5 1e-5"/>
                      <joint name="right_finger_joint" type="slide" axis="0 1 0" range="0 0.0425" armature="0.01"
                             damping="2"/>
                      <geom name="right_pad" type="box" size="0.015 0.006 0.035" material="steel"
                            friction="1.5 0.03 0.001" {g}/>
                    </body>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>
"""


def _xarm_actuators() -> str:
    kp = [2000, 2000, 1500, 1500, 800, 800, 400]
    lines = []
    for name, k in zip(XARM_JOINTS, kp):
        lo, hi = XARM_LIMITS[name]
        lines.append(
            f'<position name="{name}" joint="{name}" kp="{k}" kv="{0.02 * k:.1f}" ctrlrange="{lo:.5f} {hi:.5f}"/>'
        )
    for side in ('left', 'right'):
        lines.append(
            f'<position name="{side}_finger" joint="{side}_finger_joint" kp="400" kv="10" '
            f'ctrlrange="0 0.0425" forcerange="-15 15"/>'
        )
    return '  <actuator>\n    ' + '\n    '.join(lines) + '\n  </actuator>\n'


# Kitchen layout (metres, robot base at the origin facing +x, table top z = 0).
FRIDGE_DOOR_HINGE_Y_OFFSET = 0.1  # hinge on the +y side of the fridge front
FRIDGE_HALF = (0.1, 0.1, 0.13)
HANDLE_STANDOFF = 0.07  # bar centre distance in front of the door
HANDLE_HEIGHT = 0.23
SHELF_HALF = (0.07, 0.07)
SHELF_HEIGHT = 0.12
BOTTLE_RADIUS = 0.028
BOTTLE_HALF_HEIGHT = 0.055


def xarm_kitchen_xml(image_size: int = 96) -> str:
    """xArm7 + gripper, a fridge with a hinged door, a shelf, a red bottle and a green target disc."""
    fx, fy, fz = FRIDGE_HALF
    door_w = 2 * fy
    handle_y = (-door_w + 0.025, -door_w + 0.105)  # ends of the handle bar along the door
    cam = (0.15, -0.85, 0.9)
    return (
        _common_header('xarm_kitchen', image_size)
        + f"""
  <worldbody>
    <light pos="0.4 0 1.5" dir="0 0 -1" diffuse="0.5 0.5 0.5" castshadow="false"/>
    <camera name="front" pos="{cam[0]} {cam[1]} {cam[2]}" xyaxes="{_lookat_xyaxes(cam, (0.42, 0.02, 0.08))}" fovy="50"/>
    {_table()}
    {_xarm_body()}
    <body name="fridge" pos="0.6 0.28 0">
      <geom name="fridge_body" type="box" size="{fx} {fy} {fz}" pos="0 0 {fz}" material="white" {_WORLD}/>
    </body>
    <body name="door" pos="{0.6 - fx} {0.28 + fy} 0">
      <joint name="door_hinge" axis="0 0 -1" range="0 1.7" damping="0.15" armature="0.002" frictionloss="0.01"/>
      <geom name="door_panel" type="box" size="0.008 {fy} {fz - 0.003}" pos="-0.008 {-fy} {fz + 0.003}" material="white"
            mass="0.3" {_WORLD}/>
      <geom name="handle_bar" type="capsule"
            fromto="{-HANDLE_STANDOFF} {handle_y[0]} {HANDLE_HEIGHT} {-HANDLE_STANDOFF} {handle_y[1]} {HANDLE_HEIGHT}"
            size="0.007" material="steel" mass="0.02" {_WORLD}/>
      <geom type="box" size="{HANDLE_STANDOFF / 2} 0.005 0.006"
            pos="{-HANDLE_STANDOFF / 2} {handle_y[0]} {HANDLE_HEIGHT}" material="steel" mass="0.01" {_WORLD}/>
      <geom type="box" size="{HANDLE_STANDOFF / 2} 0.005 0.006"
            pos="{-HANDLE_STANDOFF / 2} {handle_y[1]} {HANDLE_HEIGHT}" material="steel" mass="0.01" {_WORLD}/>
    </body>
    <body name="shelf" pos="0.45 -0.3 0">
      <geom name="shelf_top" type="box" size="{SHELF_HALF[0]} {SHELF_HALF[1]} 0.01" pos="0 0 {SHELF_HEIGHT - 0.01}"
            material="wood" {_WORLD}/>
      <geom type="box" size="0.02 0.02 {(SHELF_HEIGHT - 0.02) / 2}" pos="0 0 {(SHELF_HEIGHT - 0.02) / 2}"
            material="wood" {_WORLD}/>
    </body>
    <body name="target" pos="0.6 0 0.0005">
      <geom type="cylinder" size="0.04 0.0005" material="green" contype="0" conaffinity="0"/>
    </body>
    <body name="bottle" pos="0.42 0 {BOTTLE_HALF_HEIGHT}">
      <freejoint name="bottle_free"/>
      <!-- bottom-heavy, like a partly filled bottle, so pushing it low does not topple it -->
      <inertial pos="0 0 {-0.5 * BOTTLE_HALF_HEIGHT}" mass="0.16" diaginertia="0.00012 0.00012 0.00006"/>
      <geom name="bottle_body" type="cylinder" size="{BOTTLE_RADIUS} {BOTTLE_HALF_HEIGHT}" material="red" mass="0.15"
            friction="0.5 0.01 0.001" {_WORLD}/>
      <geom type="cylinder" size="0.011 0.02" pos="0 0 {BOTTLE_HALF_HEIGHT + 0.02}" material="red" mass="0.01"
            {_WORLD}/>
    </body>
  </worldbody>
"""
        + _xarm_actuators()
        + '</mujoco>\n'
    )


# Allegro finger geometry (metres).
_FINGER_LINKS = (0.0164, 0.054, 0.0384, 0.0267)
_FINGER_TIP = 0.0157
_THUMB_LINKS = (0.0177, 0.0514, 0.0423)
_PALM_HALF = (0.0475, 0.056, 0.018)
ALLEGRO_MOUNT_HOME = (0.0, 0.0, 0.2)


def _allegro_finger(finger: str, y: float) -> str:
    """Index, middle or ring finger (bodies and tip site named after it) with its base at `y` on the palm."""
    g = _ROBOT
    l0, l1, l2, l3 = _FINGER_LINKS
    joint = [allegro_joint(finger, j) for j in range(4)]
    lim = [ALLEGRO_LIMITS[name] for name in joint]
    r = 'range="{:.4f} {:.4f}"'
    return f"""
        <body name="{finger}_base" pos="{_PALM_HALF[0]} {y} 0">
          <joint name="{joint[0]}" axis="0 0 1" {r.format(*lim[0])}/>
          <geom type="capsule" fromto="0 0 0 {l0} 0 0" size="0.0095" material="dark" {g}/>
          <body name="{finger}_proximal" pos="{l0} 0 0">
            <joint name="{joint[1]}" axis="0 1 0" {r.format(*lim[1])}/>
            <geom type="capsule" fromto="0 0 0 {l1} 0 0" size="0.0095" material="dark" {g}/>
            <body name="{finger}_medial" pos="{l1} 0 0">
              <joint name="{joint[2]}" axis="0 1 0" {r.format(*lim[2])}/>
              <geom type="capsule" fromto="0 0 0 {l2} 0 0" size="0.0095" material="dark" {g}/>
              <body name="{finger}_distal" pos="{l2} 0 0">
                <joint name="{joint[3]}" axis="0 1 0" {r.format(*lim[3])}/>
                <geom type="capsule" fromto="0 0 0 {l3} 0 0" size="0.0095" material="dark" {g}/>
                <geom type="sphere" pos="{l3 + _FINGER_TIP - 0.01} 0 0" size="0.012" material="white"
                      friction="1.5 0.03 0.001" {g}/>
                <site name="{finger}_tip" pos="{l3 + _FINGER_TIP} 0 0" size="0.003"/>
              </body>
            </body>
          </body>
        </body>"""


def _allegro_thumb() -> str:
    g = _ROBOT
    l13, l14, l15 = _THUMB_LINKS
    joint = [allegro_joint('thumb', j) for j in range(4)]
    lim = [ALLEGRO_LIMITS[name] for name in joint]
    r = 'range="{:.4f} {:.4f}"'
    # The thumb link points along local +y; its base joint swings it from beside the palm to under
    # it, its medial and distal joints flex it towards +x (towards the fingers).
    return f"""
        <body name="thumb_base" pos="-0.01 0.025 {-_PALM_HALF[2]}">
          <joint name="{joint[0]}" axis="-1 0 0" {r.format(*lim[0])}/>
          <geom type="capsule" fromto="0 0 0 0 0.015 0" size="0.0095" material="dark" {g}/>
          <body name="thumb_proximal" pos="0 0.015 0">
            <joint name="{joint[1]}" axis="0 1 0" {r.format(*lim[1])}/>
            <geom type="capsule" fromto="0 0 0 0 {l13} 0" size="0.0095" material="dark" {g}/>
            <body name="thumb_medial" pos="0 {l13} 0">
              <joint name="{joint[2]}" axis="0 0 -1" {r.format(*lim[2])}/>
              <geom type="capsule" fromto="0 0 0 0 {l14} 0" size="0.0095" material="dark" {g}/>
              <body name="thumb_distal" pos="0 {l14} 0">
                <joint name="{joint[3]}" axis="0 0 -1" {r.format(*lim[3])}/>
                <geom type="capsule" fromto="0 0 0 0 {l15 - 0.01} 0" size="0.0095" material="dark" {g}/>
                <geom type="sphere" pos="0 {l15 - 0.01} 0" size="0.012" material="white" friction="1.5 0.03 0.001" {g}/>
                <site name="thumb_tip" pos="0 {l15} 0" size="0.003"/>
              </body>
            </body>
          </body>
        </body>"""


def _allegro_actuators() -> str:
    lines = []
    for name in ALLEGRO_MOUNT_JOINTS:
        lo, hi = ALLEGRO_MOUNT_LIMITS[name]
        lines.append(f'<position name="{name}" joint="{name}" kp="3000" kv="300" ctrlrange="{lo} {hi}"/>')
    for name in ALLEGRO_JOINTS:
        lo, hi = ALLEGRO_LIMITS[name]
        lines.append(f'<position name="{name}" joint="{name}" kp="6" kv="0.15" ctrlrange="{lo:.4f} {hi:.4f}" '
                     'forcerange="-1.5 1.5"/>')
    return '  <actuator>\n    ' + '\n    '.join(lines) + '\n  </actuator>\n'


CABINET_POS = (0.22, 0.16)
CABINET_HALF = (0.06, 0.09, 0.1)
CABINET_HANDLE_STANDOFF = 0.055
CABINET_HANDLE_HEIGHT = 0.17
LIFT_OBJECT_HALF = (0.022, 0.022, 0.035)


def allegro_scene_xml(image_size: int = 96) -> str:
    """Allegro hand on a Cartesian mount above a table with a box to lift and a small cabinet."""
    lo = {n: ALLEGRO_MOUNT_LIMITS[n] for n in ALLEGRO_MOUNT_JOINTS}
    cx, cy = CABINET_POS
    hx, hy, hz = CABINET_HALF
    handle_y = (-2 * hy + 0.02, -2 * hy + 0.09)  # ends of the handle bar along the door
    handle_x = -CABINET_HANDLE_STANDOFF
    cam = (-0.3, -0.6, 0.62)
    px, py, pz = _PALM_HALF
    return (
        _common_header('allegro_manipulation', image_size)
        + f"""
  <worldbody>
    <light pos="0 0 1.5" dir="0 0 -1" diffuse="0.5 0.5 0.5" castshadow="false"/>
    <camera name="front" pos="{cam[0]} {cam[1]} {cam[2]}" xyaxes="{_lookat_xyaxes(cam, (0.12, 0.05, 0.13))}" fovy="50"/>
    {_table()}
    <body name="mount" pos="0 0 0" gravcomp="1">
      <inertial pos="0 0 0" mass="1.0" diaginertia="0.01 0.01 0.01"/>
      <joint name="mount_x" type="slide" axis="1 0 0" range="{lo['mount_x'][0]} {lo['mount_x'][1]}" damping="20"/>
      <joint name="mount_y" type="slide" axis="0 1 0" range="{lo['mount_y'][0]} {lo['mount_y'][1]}" damping="20"/>
      <joint name="mount_z" type="slide" axis="0 0 1" range="{lo['mount_z'][0]} {lo['mount_z'][1]}" damping="20"/>
      <geom type="cylinder" size="0.02 0.15" pos="-0.04 0 {pz + 0.15}" material="steel" {_ROBOT}/>
      <body name="palm" pos="0 0 0" gravcomp="1">
        <inertial pos="0 0 0" mass="0.4" diaginertia="0.001 0.001 0.001"/>
        <geom name="palm" type="box" size="{px} {py} {pz}" material="dark" {_ROBOT}/>
        <site name="palm_center" pos="0 0 {-pz}" size="0.003"/>
        {_allegro_finger('index', 0.0435)}
        {_allegro_finger('middle', 0.0)}
        {_allegro_finger('ring', -0.0435)}
        {_allegro_thumb()}
      </body>
    </body>
    <body name="object" pos="0.08 0 {LIFT_OBJECT_HALF[2]}">
      <freejoint name="object_free"/>
      <geom name="object" type="box" size="{LIFT_OBJECT_HALF[0]} {LIFT_OBJECT_HALF[1]} {LIFT_OBJECT_HALF[2]}"
            material="red" mass="0.05" friction="1.5 0.03 0.001" {_WORLD}/>
    </body>
    <body name="cabinet" pos="{cx} {cy} 0">
      <geom name="cabinet_body" type="box" size="{hx} {hy} {hz}" pos="0 0 {hz}" material="wood" {_WORLD}/>
    </body>
    <body name="cabinet_door" pos="{cx - hx} {cy + hy} 0">
      <joint name="cabinet_hinge" axis="0 0 -1" range="0 1.7" damping="0.05" armature="0.001" frictionloss="0.005"/>
      <geom name="cabinet_door" type="box" size="0.006 {hy} {hz - 0.003}" pos="-0.006 {-hy} {hz + 0.003}"
            material="white" mass="0.15" {_WORLD}/>
      <geom name="cabinet_handle" type="capsule"
            fromto="{handle_x} {handle_y[0]} {CABINET_HANDLE_HEIGHT} {handle_x} {handle_y[1]} {CABINET_HANDLE_HEIGHT}"
            size="0.006" material="steel" mass="0.01" {_WORLD}/>
      <geom type="box" size="{CABINET_HANDLE_STANDOFF / 2} 0.004 0.005"
            pos="{-CABINET_HANDLE_STANDOFF / 2} {handle_y[0]} {CABINET_HANDLE_HEIGHT}" material="steel" mass="0.005"
            {_WORLD}/>
      <geom type="box" size="{CABINET_HANDLE_STANDOFF / 2} 0.004 0.005"
            pos="{-CABINET_HANDLE_STANDOFF / 2} {handle_y[1]} {CABINET_HANDLE_HEIGHT}" material="steel" mass="0.005"
            {_WORLD}/>
    </body>
  </worldbody>
"""
        + _allegro_actuators()
        + '</mujoco>\n'
    )


# --- Optional visuals from a local MuJoCo Menagerie checkout ----------------------------------

class MenagerieError(ValueError):
    """A Menagerie path that lacks what a scene needs; the message names the path and the file."""


@dataclass(frozen=True)
class MenagerieRobot:
    """Where a robot's model lies in a Menagerie checkout and which of our bodies carries its links."""

    xml: str  # relative to the checkout
    root: str  # the Menagerie body fixed to our body bodies[root]
    root_pos: tuple[float, float, float]  # the root's frame in our body's frame
    root_quat: tuple[float, float, float, float]
    bodies: dict[str, str]  # Menagerie body -> our body whose motion its meshes follow


_ALLEGRO_LINKS = ('base', 'proximal', 'medial', 'distal')
# Menagerie's wonik_allegro names its bodies <prefix>_<link> and its joints <prefix>j0..3 by
# finger: ff (first finger) = index, mf = middle, rf = ring, th = thumb.
MENAGERIE_ALLEGRO_FINGERS = {'th': 'thumb', 'ff': 'index', 'mf': 'middle', 'rf': 'ring'}
MENAGERIE_ALLEGRO_JOINTS = {
    f'{theirs}j{j}': allegro_joint(ours, j) for theirs, ours in MENAGERIE_ALLEGRO_FINGERS.items() for j in range(4)
}
MENAGERIE_ROBOTS = {
    'xarm7': MenagerieRobot(
        xml='ufactory_xarm7/xarm7.xml',
        root='link_base', root_pos=(0.0, 0.0, 0.0), root_quat=(1.0, 0.0, 0.0, 0.0),  # the same URDF frames
        bodies={
            'link_base': 'link_base',
            **{f'link{i}': f'link{i}' for i in range(1, 8)},
            # Menagerie's gripper base is turned half a turn about z, so its left knuckles (and the
            # finger on them) are on our right. Their four-bar fingers are drawn sliding with ours.
            'left_outer_knuckle': 'right_finger', 'left_inner_knuckle': 'right_finger',
            'right_outer_knuckle': 'left_finger', 'right_inner_knuckle': 'left_finger',
        },
    ),
    'allegro_hand': MenagerieRobot(
        xml='wonik_allegro/right_hand.xml',
        # Menagerie's palm frame has the fingers along +z, the palm face +x and the finger base
        # joints at z = 0; ours has them along +x, the face -z and the joints at x = _PALM_HALF[0].
        root='palm', root_pos=(_PALM_HALF[0], 0.0, 0.0), root_quat=(np.sqrt(0.5), 0.0, np.sqrt(0.5), 0.0),
        bodies={
            'palm': 'palm',
            **{f'{theirs}_{link}': f'{ours}_{link}' for theirs, ours in MENAGERIE_ALLEGRO_FINGERS.items()
               for link in _ALLEGRO_LINKS},
        },
    ),
}
# mujoco.Renderer and the viewer draw geom groups 0-2 by default; Menagerie models keep their
# collision geoms in group 3.
_HIGHEST_DRAWN_GROUP = 2
_HIDDEN_GROUP = 3
_MENAGERIE_VISUAL_GROUP = 2

Pose = tuple[np.ndarray, np.ndarray]  # (pos, quat)


def _compose(a: Pose, b: Pose) -> Pose:
    pos, quat = np.zeros(3), np.zeros(4)
    mujoco.mju_mulPose(pos, quat, a[0], a[1], b[0], b[1])
    return pos, quat


def _inverse(a: Pose) -> Pose:
    pos, quat = np.zeros(3), np.zeros(4)
    mujoco.mju_negPose(pos, quat, a[0], a[1])
    return pos, quat


def _rotate(quat: np.ndarray, vec: np.ndarray) -> np.ndarray:
    out = np.zeros(3)
    mujoco.mju_rotVecQuat(out, vec, quat)
    return out


def _reference_kinematics(model: mujoco.MjModel) -> mujoco.MjData:
    """Body and geom frames at the reference configuration qpos0 (every joint at zero)."""
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    return data


def _single_hinge(model: mujoco.MjModel, body: int) -> int | None:
    """Return the body's joint id if it moves about exactly one hinge."""
    if model.body_jntnum[body] != 1:
        return None
    joint = model.body_jntadr[body]
    return joint if model.jnt_type[joint] == mujoco.mjtJoint.mjJNT_HINGE else None


def _mesh_path(xml: Path, spec: mujoco.MjSpec, mesh: mujoco.MjsMesh) -> Path:
    return xml.parent / spec.meshdir / mesh.file


def _read_menagerie_robot(checkout, robot: MenagerieRobot) -> tuple[Path, mujoco.MjSpec, mujoco.MjModel]:
    """Return the robot's Menagerie model file, spec and compiled model; a MenagerieError names what is missing."""
    checkout = Path(checkout).expanduser()
    if not checkout.is_dir():
        raise MenagerieError(
            f'menagerie path {checkout} is not a directory (expected a MuJoCo Menagerie checkout holding {robot.xml})')
    xml = checkout / robot.xml
    if not xml.is_file():
        raise MenagerieError(f'menagerie path {checkout} has no {robot.xml} (expected a MuJoCo Menagerie checkout)')
    try:
        spec = mujoco.MjSpec.from_file(str(xml))
    except ValueError as error:
        raise MenagerieError(f'cannot read {xml}: {error}') from None
    for mesh in spec.meshes:
        path = _mesh_path(xml, spec, mesh)
        if not path.is_file():
            raise MenagerieError(f'{xml} uses mesh file {mesh.file}, which is missing (expected {path})')
    try:
        model = spec.compile()
    except ValueError as error:
        raise MenagerieError(f'cannot load {xml}: {error}') from None
    for name in robot.bodies:
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name) < 0:
            raise MenagerieError(f"{xml} has no body {name!r} (expected MuJoCo Menagerie's {robot.xml})")
    return xml, spec, model


def with_menagerie_visuals(scene_xml: str, robot_type: str, checkout) -> mujoco.MjModel:
    """Compile `scene_xml` with its robot drawn by the meshes of the Menagerie checkout `checkout`.

    Only what is drawn changes. Our robot geoms keep colliding but move to a group renderers hide;
    each mesh geom the Menagerie model draws becomes a massless, non-colliding geom of the body
    of ours that its link maps to (MENAGERIE_ROBOTS; a Menagerie body that is not mapped, like a
    fingertip, goes with its nearest mapped ancestor). A link is placed on ours as the two models
    line up at the reference configuration (all joints at zero), with the root bodies related by
    root_pos/root_quat. Where both links turn about a hinge, the Menagerie hinge is put on ours,
    so the mesh turns about the point our physics turns about even where our simplified
    kinematics put it elsewhere (the Allegro thumb's base).
    """
    robot = MENAGERIE_ROBOTS[robot_type]
    their_xml, their_spec, theirs = _read_menagerie_robot(checkout, robot)
    their_ref = _reference_kinematics(theirs)
    scene = mujoco.MjSpec.from_string(scene_xml)
    ours = scene.compile()
    our_ref = _reference_kinematics(ours)

    def their_pose(body: int) -> Pose:
        return their_ref.xpos[body], their_ref.xquat[body]

    def our_pose(body: int) -> Pose:
        return our_ref.xpos[body], our_ref.xquat[body]

    their_root = theirs.body(robot.root).id
    our_root = ours.body(robot.bodies[robot.root]).id
    root = (np.array(robot.root_pos), np.array(robot.root_quat))

    def link_on_ours(their_body: int, our_body: int) -> Pose:
        """Return the frame of the Menagerie link `their_body` in the frame of our body `our_body`."""
        if their_body == their_root:
            return root
        their_in_root = _compose(_inverse(their_pose(their_root)), their_pose(their_body))
        our_in_root = _compose(_inverse(our_pose(our_root)), our_pose(our_body))
        pos, quat = _compose(_inverse(our_in_root), _compose(root, their_in_root))
        our_hinge, their_hinge = _single_hinge(ours, our_body), _single_hinge(theirs, their_body)
        if our_hinge is not None and their_hinge is not None:
            pos = ours.jnt_pos[our_hinge] - _rotate(quat, theirs.jnt_pos[their_hinge])
        return pos, quat

    mapped = {theirs.body(name).id: ours.body(our_name).id for name, our_name in robot.bodies.items()}
    for our_name in set(robot.bodies.values()):
        for geom in scene.body(our_name).geoms:
            geom.group = _HIDDEN_GROUP
    their_meshes = {mesh.name: mesh for mesh in their_spec.meshes}
    added_meshes = set()
    for geom in range(theirs.ngeom):
        if theirs.geom_type[geom] != mujoco.mjtGeom.mjGEOM_MESH or theirs.geom_group[geom] > _HIGHEST_DRAWN_GROUP:
            continue
        link = theirs.geom_bodyid[geom]
        while link not in mapped and link != 0:
            link = theirs.body_parentid[link]
        if link == 0:  # not part of the robot (a floor, say)
            continue
        mesh_id = theirs.geom_dataid[geom]
        mesh_name = theirs.mesh(mesh_id).name
        # Compiled mesh geoms include the offset MuJoCo moves the mesh's vertices by; undo it, as
        # compiling our copy of the mesh applies it again.
        offset = theirs.mesh_pos[mesh_id], theirs.mesh_quat[mesh_id]
        geom_quat = np.zeros(4)
        mujoco.mju_mat2Quat(geom_quat, their_ref.geom_xmat[geom])
        authored = _compose((their_ref.geom_xpos[geom], geom_quat), _inverse(offset))
        in_link = _compose(_inverse(their_pose(link)), authored)
        pos, quat = _compose(link_on_ours(link, mapped[link]), in_link)
        our_mesh_name = f'menagerie_{mesh_name}'
        if mesh_name not in added_meshes:
            their_mesh = their_meshes[mesh_name]
            scene.add_mesh(name=our_mesh_name, file=str(_mesh_path(their_xml, their_spec, their_mesh)),
                           scale=their_mesh.scale, inertia=their_mesh.inertia, smoothnormal=their_mesh.smoothnormal)
            added_meshes.add(mesh_name)
        material = theirs.geom_matid[geom]
        scene.body(ours.body(mapped[link]).name).add_geom(
            type=mujoco.mjtGeom.mjGEOM_MESH, meshname=our_mesh_name, pos=pos, quat=quat,
            rgba=theirs.mat_rgba[material] if material >= 0 else theirs.geom_rgba[geom],
            contype=0, conaffinity=0, group=_MENAGERIE_VISUAL_GROUP, mass=0.0,
        )
    return scene.compile()
