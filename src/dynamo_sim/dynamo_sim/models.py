"""MJCF scenes written from published kinematic facts, with simple geometry (nothing downloaded).

UFactory xArm7: joint frames, axes and limits as in UFactory's xarm_description URDF
(joint1 at z=0.267; link3 at (0,-0.293,0); link4 at (0.0525,0,0); link5 at (0.0775,-0.3425,0);
link7 at (0.076,0.097,0); every joint about its local z). The gripper is a parallel gripper whose
opening is commanded like xarm_ros2's gripper: `drive_joint` in [0 (open), 0.85 (closed)],
86 mm stroke. It is realised by two finger slides driven together (finger travel = 0.05 m/rad *
drive_joint), so `drive_joint` is reported as the mean finger travel / 0.05.

Wonik Allegro hand (right): four fingers x four joints, ah_joint00..33 = index 0-3, middle 4-7,
ring 8-11, thumb 12-15; link lengths 16.4/54/38.4/26.7(+15.7 tip) mm for the fingers,
17.7/51.4/42.3 mm for the thumb, joint limits of the allegro_hand_description URDF. Frames are
ours: the palm faces down (-z), fingers point along +x and flex towards -z; the thumb opposes
from under the palm and flexes towards +x. The hand hangs from a Cartesian mount with three slide
joints (mount_x, mount_y, mount_z) standing in for the arm it is normally carried by.

All robot geoms have contype=2/conaffinity=1 so robot links never collide with each other but do
collide with the world (contype=1/conaffinity=3). Robot bodies are gravity compensated, like a
real position-controlled arm, so position actuators track their targets.
"""
from __future__ import annotations

import numpy as np

XARM_JOINTS = [f"joint{i}" for i in range(1, 8)]
XARM_GRIPPER_JOINT = "drive_joint"
XARM_GRIPPER_RANGE = (0.0, 0.85)
XARM_FINGER_TRAVEL_PER_DRIVE = 0.05  # m of finger travel per unit of drive_joint
XARM_LIMITS = {
    "joint1": (-2 * np.pi, 2 * np.pi),
    "joint2": (-2.059, 2.0944),
    "joint3": (-2 * np.pi, 2 * np.pi),
    "joint4": (-0.19198, 3.927),
    "joint5": (-2 * np.pi, 2 * np.pi),
    "joint6": (-1.69297, np.pi),
    "joint7": (-2 * np.pi, 2 * np.pi),
}
ALLEGRO_JOINTS = [f"ah_joint{f}{j}" for f in range(4) for j in range(4)]
ALLEGRO_MOUNT_JOINTS = ["mount_x", "mount_y", "mount_z"]
_FINGER_LIMITS = [(-0.47, 0.47), (-0.196, 1.61), (-0.174, 1.709), (-0.227, 1.618)]
_THUMB_LIMITS = [(0.263, 1.396), (-0.105, 1.163), (-0.189, 1.644), (-0.162, 1.719)]
ALLEGRO_LIMITS = {
    name: (_THUMB_LIMITS if i >= 12 else _FINGER_LIMITS)[i % 4] for i, name in enumerate(ALLEGRO_JOINTS)
}
ALLEGRO_MOUNT_LIMITS = {"mount_x": (-0.25, 0.25), "mount_y": (-0.25, 0.25), "mount_z": (0.0, 0.35)}

_ROBOT = 'contype="2" conaffinity="1"'
_WORLD = 'contype="1" conaffinity="3"'


def _lookat_xyaxes(pos, target):
    """MJCF camera xyaxes for a camera at `pos` looking at `target` with the world z up."""
    forward = np.asarray(target, float) - np.asarray(pos, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return " ".join(f"{v:.5f}" for v in (*right, *up))


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
    <geom name="table" type="box" size="0.9 0.8 0.02" pos="0.35 0 -0.02" material="table" friction="0.5 0.01 0.001" {_WORLD}/>
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
                      <joint name="left_finger_joint" type="slide" axis="0 -1 0" range="0 0.0425" armature="0.01" damping="2"/>
                      <geom name="left_pad" type="box" size="0.015 0.006 0.035" material="steel" friction="1.5 0.03 0.001" {g}/>
                    </body>
                    <body name="right_finger" pos="0 -0.0485 0.14" gravcomp="1">
                      <inertial pos="0 0 0" mass="0.05" diaginertia="1e-5 1e-5 1e-5"/>
                      <joint name="right_finger_joint" type="slide" axis="0 1 0" range="0 0.0425" armature="0.01" damping="2"/>
                      <geom name="right_pad" type="box" size="0.015 0.006 0.035" material="steel" friction="1.5 0.03 0.001" {g}/>
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
    for side in ("left", "right"):
        lines.append(
            f'<position name="{side}_finger" joint="{side}_finger_joint" kp="400" kv="10" '
            f'ctrlrange="0 0.0425" forcerange="-15 15"/>'
        )
    return "  <actuator>\n    " + "\n    ".join(lines) + "\n  </actuator>\n"


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
    cam = (0.15, -0.85, 0.9)
    return (
        _common_header("xarm_kitchen", image_size)
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
      <geom name="door_panel" type="box" size="0.008 {fy} {fz - 0.003}" pos="-0.008 {-fy} {fz + 0.003}" material="white" mass="0.3" {_WORLD}/>
      <geom name="handle_bar" type="capsule" fromto="{-HANDLE_STANDOFF} {-door_w + 0.025} {HANDLE_HEIGHT} {-HANDLE_STANDOFF} {-door_w + 0.105} {HANDLE_HEIGHT}" size="0.007" material="steel" mass="0.02" {_WORLD}/>
      <geom type="box" size="{HANDLE_STANDOFF / 2} 0.005 0.006" pos="{-HANDLE_STANDOFF / 2} {-door_w + 0.025} {HANDLE_HEIGHT}" material="steel" mass="0.01" {_WORLD}/>
      <geom type="box" size="{HANDLE_STANDOFF / 2} 0.005 0.006" pos="{-HANDLE_STANDOFF / 2} {-door_w + 0.105} {HANDLE_HEIGHT}" material="steel" mass="0.01" {_WORLD}/>
    </body>
    <body name="shelf" pos="0.45 -0.3 0">
      <geom name="shelf_top" type="box" size="{SHELF_HALF[0]} {SHELF_HALF[1]} 0.01" pos="0 0 {SHELF_HEIGHT - 0.01}" material="wood" {_WORLD}/>
      <geom type="box" size="0.02 0.02 {(SHELF_HEIGHT - 0.02) / 2}" pos="0 0 {(SHELF_HEIGHT - 0.02) / 2}" material="wood" {_WORLD}/>
    </body>
    <body name="target" pos="0.6 0 0.0005">
      <geom type="cylinder" size="0.04 0.0005" material="green" contype="0" conaffinity="0"/>
    </body>
    <body name="bottle" pos="0.42 0 {BOTTLE_HALF_HEIGHT}">
      <freejoint name="bottle_free"/>
      <!-- bottom-heavy, like a partly filled bottle, so pushing it low does not topple it -->
      <inertial pos="0 0 {-0.5 * BOTTLE_HALF_HEIGHT}" mass="0.16" diaginertia="0.00012 0.00012 0.00006"/>
      <geom name="bottle_body" type="cylinder" size="{BOTTLE_RADIUS} {BOTTLE_HALF_HEIGHT}" material="red" mass="0.15" friction="0.5 0.01 0.001" {_WORLD}/>
      <geom type="cylinder" size="0.011 0.02" pos="0 0 {BOTTLE_HALF_HEIGHT + 0.02}" material="red" mass="0.01" {_WORLD}/>
    </body>
  </worldbody>
"""
        + _xarm_actuators()
        + "</mujoco>\n"
    )


# Allegro finger geometry (metres).
_FINGER_LINKS = (0.0164, 0.054, 0.0384, 0.0267)
_FINGER_TIP = 0.0157
_THUMB_LINKS = (0.0177, 0.0514, 0.0423)
_PALM_HALF = (0.0475, 0.056, 0.018)
ALLEGRO_MOUNT_HOME = (0.0, 0.0, 0.2)


def _allegro_finger(index: int, y: float) -> str:
    g = _ROBOT
    l0, l1, l2, l3 = _FINGER_LINKS
    lim = [ALLEGRO_LIMITS[f"ah_joint{index}{j}"] for j in range(4)]
    r = 'range="{:.4f} {:.4f}"'
    return f"""
        <body name="finger{index}_base" pos="{_PALM_HALF[0]} {y} 0">
          <joint name="ah_joint{index}0" axis="0 0 1" {r.format(*lim[0])}/>
          <geom type="capsule" fromto="0 0 0 {l0} 0 0" size="0.0095" material="dark" {g}/>
          <body pos="{l0} 0 0">
            <joint name="ah_joint{index}1" axis="0 1 0" {r.format(*lim[1])}/>
            <geom type="capsule" fromto="0 0 0 {l1} 0 0" size="0.0095" material="dark" {g}/>
            <body pos="{l1} 0 0">
              <joint name="ah_joint{index}2" axis="0 1 0" {r.format(*lim[2])}/>
              <geom type="capsule" fromto="0 0 0 {l2} 0 0" size="0.0095" material="dark" {g}/>
              <body pos="{l2} 0 0">
                <joint name="ah_joint{index}3" axis="0 1 0" {r.format(*lim[3])}/>
                <geom type="capsule" fromto="0 0 0 {l3} 0 0" size="0.0095" material="dark" {g}/>
                <geom type="sphere" pos="{l3 + _FINGER_TIP - 0.01} 0 0" size="0.012" material="white" friction="1.5 0.03 0.001" {g}/>
                <site name="tip{index}" pos="{l3 + _FINGER_TIP} 0 0" size="0.003"/>
              </body>
            </body>
          </body>
        </body>"""


def _allegro_thumb() -> str:
    g = _ROBOT
    l13, l14, l15 = _THUMB_LINKS
    lim = [ALLEGRO_LIMITS[f"ah_joint3{j}"] for j in range(4)]
    r = 'range="{:.4f} {:.4f}"'
    # The thumb link points along local +y; joint 12 swings it from beside the palm to under it,
    # joints 14/15 flex it towards +x (towards the fingers).
    return f"""
        <body name="thumb_base" pos="-0.01 0.025 {-_PALM_HALF[2]}">
          <joint name="ah_joint30" axis="-1 0 0" {r.format(*lim[0])}/>
          <geom type="capsule" fromto="0 0 0 0 0.015 0" size="0.0095" material="dark" {g}/>
          <body pos="0 0.015 0">
            <joint name="ah_joint31" axis="0 1 0" {r.format(*lim[1])}/>
            <geom type="capsule" fromto="0 0 0 0 {l13} 0" size="0.0095" material="dark" {g}/>
            <body pos="0 {l13} 0">
              <joint name="ah_joint32" axis="0 0 -1" {r.format(*lim[2])}/>
              <geom type="capsule" fromto="0 0 0 0 {l14} 0" size="0.0095" material="dark" {g}/>
              <body pos="0 {l14} 0">
                <joint name="ah_joint33" axis="0 0 -1" {r.format(*lim[3])}/>
                <geom type="capsule" fromto="0 0 0 0 {l15 - 0.01} 0" size="0.0095" material="dark" {g}/>
                <geom type="sphere" pos="0 {l15 - 0.01} 0" size="0.012" material="white" friction="1.5 0.03 0.001" {g}/>
                <site name="tip3" pos="0 {l15} 0" size="0.003"/>
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
        lines.append(
            f'<position name="{name}" joint="{name}" kp="6" kv="0.15" ctrlrange="{lo:.4f} {hi:.4f}" forcerange="-1.5 1.5"/>'
        )
    return "  <actuator>\n    " + "\n    ".join(lines) + "\n  </actuator>\n"


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
    cam = (-0.3, -0.6, 0.62)
    px, py, pz = _PALM_HALF
    return (
        _common_header("allegro_manipulation", image_size)
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
        {_allegro_finger(0, 0.0435)}
        {_allegro_finger(1, 0.0)}
        {_allegro_finger(2, -0.0435)}
        {_allegro_thumb()}
      </body>
    </body>
    <body name="object" pos="0.08 0 {LIFT_OBJECT_HALF[2]}">
      <freejoint name="object_free"/>
      <geom name="object" type="box" size="{LIFT_OBJECT_HALF[0]} {LIFT_OBJECT_HALF[1]} {LIFT_OBJECT_HALF[2]}" material="red" mass="0.05" friction="1.5 0.03 0.001" {_WORLD}/>
    </body>
    <body name="cabinet" pos="{cx} {cy} 0">
      <geom name="cabinet_body" type="box" size="{hx} {hy} {hz}" pos="0 0 {hz}" material="wood" {_WORLD}/>
    </body>
    <body name="cabinet_door" pos="{cx - hx} {cy + hy} 0">
      <joint name="cabinet_hinge" axis="0 0 -1" range="0 1.7" damping="0.05" armature="0.001" frictionloss="0.005"/>
      <geom name="cabinet_door" type="box" size="0.006 {hy} {hz - 0.003}" pos="-0.006 {-hy} {hz + 0.003}" material="white" mass="0.15" {_WORLD}/>
      <geom name="cabinet_handle" type="capsule" fromto="{-CABINET_HANDLE_STANDOFF} {-2 * hy + 0.02} {CABINET_HANDLE_HEIGHT} {-CABINET_HANDLE_STANDOFF} {-2 * hy + 0.09} {CABINET_HANDLE_HEIGHT}" size="0.006" material="steel" mass="0.01" {_WORLD}/>
      <geom type="box" size="{CABINET_HANDLE_STANDOFF / 2} 0.004 0.005" pos="{-CABINET_HANDLE_STANDOFF / 2} {-2 * hy + 0.02} {CABINET_HANDLE_HEIGHT}" material="steel" mass="0.005" {_WORLD}/>
      <geom type="box" size="{CABINET_HANDLE_STANDOFF / 2} 0.004 0.005" pos="{-CABINET_HANDLE_STANDOFF / 2} {-2 * hy + 0.09} {CABINET_HANDLE_HEIGHT}" material="steel" mass="0.005" {_WORLD}/>
    </body>
  </worldbody>
"""
        + _allegro_actuators()
        + "</mujoco>\n"
    )
