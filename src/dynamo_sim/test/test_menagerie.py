"""Menagerie visuals: a checkout's meshes draw the robot, physics stays ours, bad paths are named.

The checkout here is a tiny fake written by the test in the real layout (ufactory_xarm7/xarm7.xml,
wonik_allegro/right_hand.xml, meshes under assets/) with the body names our mapping reads, so
nothing is downloaded.
"""
import struct

import mujoco
import numpy as np
import pytest

from dynamo_sim.envs import SimError, make_env
from dynamo_sim.models import MENAGERIE_ALLEGRO_JOINTS, MENAGERIE_ROBOTS
from dynamo_sim.recording import expert_rollout
from dynamo_sim.recording import main as record_demos_main


def _box(lo, hi):
    """Corners and outward-facing triangles of an axis-aligned box."""
    corners = [(x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]
    triangles = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
                 (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]
    return corners, triangles


def _write_obj(path, lo, hi):
    corners, triangles = _box(lo, hi)
    lines = [f'v {x} {y} {z}' for x, y, z in corners] + [f'f {a + 1} {b + 1} {c + 1}' for a, b, c in triangles]
    path.write_text('\n'.join(lines) + '\n')


def _write_stl(path, lo, hi):
    """Binary STL (MuJoCo reads no ASCII STL)."""
    corners, triangles = _box(lo, hi)
    data = bytearray(80) + struct.pack('<I', len(triangles))
    for triangle in triangles:
        data += struct.pack('<3f', 0, 0, 0)
        for i in triangle:
            data += struct.pack('<3f', *corners[i])
        data += b'\0\0'
    path.write_bytes(bytes(data))


# Off-centre boxes, so the offset MuJoCo moves mesh vertices by matters.
XARM_LINKS = [  # body, pos, quat in the parent (UFactory's URDF frames, as in our model)
    ('link1', '0 0 0.267', '1 0 0 0'), ('link2', '0 0 0', '1 -1 0 0'), ('link3', '0 -0.293 0', '1 1 0 0'),
    ('link4', '0.0525 0 0', '1 1 0 0'), ('link5', '0.0775 -0.3425 0', '1 1 0 0'), ('link6', '0 0 0', '1 1 0 0'),
    ('link7', '0.076 0.097 0', '1 -1 0 0'),
]
XARM_DRAWN_MESH_GEOMS = 8 + 1 + 4 + 2  # link_base..link7, gripper base, knuckles, fingers


def _write_xarm(root):
    assets = root / 'ufactory_xarm7' / 'assets'
    assets.mkdir(parents=True)
    for name in ['link_base'] + [link for link, _, _ in XARM_LINKS]:
        _write_obj(assets / f'{name}.obj', (-0.03, -0.03, -0.05), (0.05, 0.04, 0.03))
    _write_stl(assets / 'base_link.stl', (-0.03, -0.04, 0.0), (0.03, 0.04, 0.08))
    _write_stl(assets / 'knuckle.stl', (-0.01, -0.005, 0.0), (0.01, 0.03, 0.04))
    _write_stl(assets / 'finger.stl', (-0.01, -0.03, 0.0), (0.01, 0.0, 0.06))
    chain = '\n'.join(
        f'<body name="{name}" pos="{pos}" quat="{quat}"><joint axis="0 0 1"/><geom mesh="{name}"/>'
        for name, pos, quat in XARM_LINKS)
    sides = ''
    for side, sign in (('left', 1), ('right', -1)):
        sides += f"""
      <body name="{side}_outer_knuckle" pos="0 {0.035 * sign} 0.06"><joint axis="1 0 0"/><geom mesh="knuckle"/>
        <body name="{side}_finger" pos="0 {0.035 * sign} 0.04"><joint axis="-1 0 0"/>
          <geom class="visual" mesh="finger"/>
          <geom type="box" size="0.01 0.002 0.01" pos="0 {-0.024 * sign} 0.03" group="3"/>
        </body>
      </body>
      <body name="{side}_inner_knuckle" pos="0 {0.02 * sign} 0.075">
        <joint axis="1 0 0"/><geom mesh="knuckle"/>
      </body>"""
    (root / 'ufactory_xarm7' / 'xarm7.xml').write_text(f"""
<mujoco model="fake xarm7">
  <compiler angle="radian" meshdir="assets"/>
  <default>
    <geom type="mesh" material="white"/>
    <default class="visual"><geom contype="0" conaffinity="0" group="2" material="black"/></default>
  </default>
  <asset>
    <material name="white" rgba="1 1 1 1"/>
    <material name="black" rgba="0.1 0.1 0.1 1"/>
    <material name="blue" rgba="0.2 0.6 0.9 1"/>
    {"".join(f'<mesh file="{f.name}"/>' for f in sorted(assets.iterdir()))}
  </asset>
  <worldbody>
    <body name="link_base" pos="0 0 0.12"><geom mesh="link_base"/>
    {chain}
    <body name="xarm_gripper_base_link" quat="0 0 0 1"><geom mesh="base_link" material="blue"/>
    {sides}
    </body>
    {"</body>" * (len(XARM_LINKS) + 1)}
  </worldbody>
</mujoco>
""")


ALLEGRO_CHAINS = {  # Menagerie prefix: base pos, quat in the palm
    'ff': ('0 0.0435 -0.0015', '0.999 -0.0436 0 0'), 'mf': ('0 0 0.0007', '1 0 0 0'),
    'rf': ('0 -0.0435 -0.0015', '0.999 0.0436 0 0'), 'th': ('-0.018 0.019 -0.046', '0.478 -0.521 -0.521 -0.478'),
}
ALLEGRO_DRAWN_MESH_GEOMS = 1 + 4 * 5  # palm, 4 links and a tip per finger


def _write_allegro(root):
    assets = root / 'wonik_allegro' / 'assets'
    assets.mkdir(parents=True)
    _write_stl(assets / 'base_link.stl', (-0.03, -0.05, -0.095), (0.01, 0.05, 0.0))
    _write_obj(assets / 'link.obj', (-0.01, -0.012, 0.0), (0.01, 0.012, 0.016))
    _write_stl(assets / 'tip.stl', (-0.012, -0.012, -0.01), (0.012, 0.012, 0.012))
    chains = ''
    for prefix, (pos, quat) in ALLEGRO_CHAINS.items():
        chain = [('base', pos, quat, '0 0 1'), ('proximal', '0 0 0.0164', '1 0 0 0', '0 1 0'),
                 ('medial', '0 0 0.054', '1 0 0 0', '0 1 0'), ('distal', '0 0 0.0384', '1 0 0 0', '0 1 0')]
        chains += ''.join(
            f'<body name="{prefix}_{link}" pos="{p}" quat="{q}"><joint name="{prefix}j{k}" axis="{axis}"/>'
            '<geom class="visual" mesh="link"/>'
            for k, (link, p, q, axis) in enumerate(chain))
        chains += (f'<body name="{prefix}_tip">'
                   '<geom class="visual" mesh="tip" pos="0 0 0.0267" material="white"/></body>')
        chains += '</body>' * len(chain)
    (root / 'wonik_allegro' / 'right_hand.xml').write_text(f"""
<mujoco model="fake allegro_right">
  <compiler angle="radian" meshdir="assets"/>
  <default>
    <default class="visual"><geom type="mesh" contype="0" conaffinity="0" group="2" material="black"/></default>
  </default>
  <asset>
    <material name="black" rgba="0.15 0.15 0.15 1"/>
    <material name="white" rgba="0.9 0.9 0.9 1"/>
    <mesh file="base_link.stl"/><mesh file="link.obj"/><mesh file="tip.stl"/>
  </asset>
  <worldbody>
    <body name="palm" quat="0 1 0 1">
      <geom class="visual" mesh="base_link"/>
      <geom type="mesh" mesh="base_link" group="3"/>
      {chains}
    </body>
  </worldbody>
</mujoco>
""")


# Menagerie's wonik_allegro joint <prefix>j<k> is joint k of finger ff (first = index), mf (middle),
# rf (ring) or th (thumb); allegro_hand_ros2 (v4) names it ah_joint<finger><k> with thumb 0,
# index 1, middle 2, ring 3.
DRIVER_FINGER_OF_MENAGERIE_PREFIX = {'th': 0, 'ff': 1, 'mf': 2, 'rf': 3}


@pytest.fixture
def menagerie(tmp_path):
    root = tmp_path / 'mujoco_menagerie'
    _write_xarm(root)
    _write_allegro(root)
    return root


def _visual_geoms(model):
    return [g for g in range(model.ngeom)
            if model.geom_group[g] == 2 and model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH]


@pytest.mark.parametrize('task, drawn',
                         [('open_door', XARM_DRAWN_MESH_GEOMS), ('lift_object', ALLEGRO_DRAWN_MESH_GEOMS)])
def test_menagerie_meshes_draw_the_robot(menagerie, task, drawn):
    plain = make_env(task, seed=2, image_size=64)
    env = make_env(task, seed=2, image_size=64, menagerie_path=menagerie)
    assert env.joint_names == plain.joint_names
    np.testing.assert_array_equal(env.lower, plain.lower)
    np.testing.assert_array_equal(env.upper, plain.upper)
    visuals = _visual_geoms(env.model)
    assert len(visuals) == drawn  # every drawn mesh geom, not the collision-group one
    assert all(env.model.geom_contype[g] == 0 and env.model.geom_conaffinity[g] == 0 for g in visuals)
    np.testing.assert_array_equal(env.model.body_mass, plain.model.body_mass)
    np.testing.assert_array_equal(env.model.body_inertia, plain.model.body_inertia)
    for e in (plain, env):
        for _ in range(3):
            e.step(e.home_targets())
    np.testing.assert_array_equal(env.joint_positions(), plain.joint_positions())
    image, plain_image = env.render(), plain.render()
    assert image.shape == plain_image.shape == (64, 64, 3) and image.std() > 5
    assert np.abs(image.astype(int) - plain_image).mean() > 1.0, 'the Menagerie meshes changed nothing drawn'
    env.close()
    plain.close()


def test_links_with_the_same_frames_carry_the_mesh_where_the_menagerie_puts_it(menagerie):
    theirs = mujoco.MjModel.from_xml_path(str(menagerie / 'ufactory_xarm7' / 'xarm7.xml'))
    ours = make_env('open_door', menagerie_path=menagerie).model
    for link in ('link2', 'link4', 'link7'):
        their_geom = theirs.body(link).geomadr[0]
        our_geom = next(g for g in _visual_geoms(ours) if ours.mesh(ours.geom_dataid[g]).name == f'menagerie_{link}')
        assert ours.geom_bodyid[our_geom] == ours.body(link).id
        np.testing.assert_allclose(ours.geom_pos[our_geom], theirs.geom_pos[their_geom], atol=1e-9)
        # q and -q are the same rotation
        assert abs(ours.geom_quat[our_geom] @ theirs.geom_quat[their_geom]) == pytest.approx(1.0, abs=1e-9)


def test_each_menagerie_allegro_link_is_drawn_on_the_link_of_the_same_finger(menagerie):
    theirs = mujoco.MjModel.from_xml_path(str(menagerie / 'wonik_allegro' / 'right_hand.xml'))
    env = make_env('lift_object', menagerie_path=menagerie)
    ours = env.model
    bodies = MENAGERIE_ROBOTS['allegro_hand'].bodies
    expected = {f'{prefix}j{k}': f'ah_joint{finger}{k}'
                for prefix, finger in DRIVER_FINGER_OF_MENAGERIE_PREFIX.items() for k in range(4)}
    assert MENAGERIE_ALLEGRO_JOINTS == expected
    for joint in range(theirs.njnt):
        their_joint = theirs.joint(joint).name
        our_body = ours.body(bodies[theirs.body(theirs.jnt_bodyid[joint]).name])
        our_joint = ours.joint(our_body.jntadr[0]).name
        assert our_joint == expected[their_joint], f'{their_joint} is drawn on the link of {our_joint}'
    # the meshes of Menagerie's thumb turn with our thumb's base joint, ah_joint00
    thumb_mesh_geoms = [g for g in range(ours.ngeom)
                        if ours.geom_group[g] == 2 and ours.geom_bodyid[g] == ours.body('thumb_distal').id]
    assert len(thumb_mesh_geoms) == 2  # the distal link and the tip
    before = env.data.geom_xpos[thumb_mesh_geoms].copy()
    targets = env.home_targets()
    targets[env.joint_names.index('ah_joint00')] = 1.3
    for _ in range(3):
        env.step(targets)
    assert np.linalg.norm(env.data.geom_xpos[thumb_mesh_geoms] - before, axis=1).min() > 0.01


@pytest.mark.parametrize('task', ['push_bottle', 'lift_object'])
def test_expert_episode_is_unchanged(menagerie, task):
    trajectories, results = [], []
    for path in (None, menagerie):
        env = make_env(task, seed=0, menagerie_path=path)
        trajectories.append(np.array([env.joint_positions() for _ in expert_rollout(env, 4)]))
        results.append(env.success())
    assert results == [True, True]
    np.testing.assert_array_equal(trajectories[0], trajectories[1])


def test_bad_menagerie_path_names_the_path_and_the_file(menagerie, tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(SimError, match=f'{missing} is not a directory.*ufactory_xarm7/xarm7.xml'):
        make_env('open_door', menagerie_path=missing)
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(SimError, match=f'{empty} has no wonik_allegro/right_hand.xml'):
        make_env('lift_object', menagerie_path=empty)
    (menagerie / 'wonik_allegro' / 'assets' / 'tip.stl').unlink()
    with pytest.raises(SimError, match='right_hand.xml uses mesh file tip.stl, which is missing'):
        make_env('lift_object', menagerie_path=menagerie)
    xml = menagerie / 'ufactory_xarm7' / 'xarm7.xml'
    xml.write_text(xml.read_text().replace('name="left_inner_knuckle"', 'name="inner_knuckle"'))
    with pytest.raises(SimError, match="xarm7.xml has no body 'left_inner_knuckle'"):
        make_env('open_door', menagerie_path=menagerie)


def test_record_demos_reports_a_bad_menagerie_path(tmp_path, capsys):
    output = tmp_path / 'bags'
    with pytest.raises(SystemExit) as exit_info:
        record_demos_main(['--task', 'open_door', '--episodes', '1', '--output', str(output),
                           '--menagerie', str(tmp_path / 'nowhere')])
    assert exit_info.value.code == 2
    assert 'nowhere is not a directory' in capsys.readouterr().err
    assert not output.exists()
