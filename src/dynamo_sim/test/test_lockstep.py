"""LockstepGate: when a lockstep simulator steps, without ROS (sim_node's ROS tests cover the timers)."""
from dynamo_sim.lockstep import LockstepGate

ARM, GRIPPER = '/arm', '/gripper'


def test_steps_once_every_awaited_topic_has_a_new_command():
    gate = LockstepGate(paced=False)
    assert not gate.on_command(ARM, [ARM, GRIPPER])
    assert gate.on_command(GRIPPER, [ARM, GRIPPER])
    gate.stepped()
    assert not gate.on_command(GRIPPER, [ARM, GRIPPER]), 'commands before the last step do not count again'
    assert gate.on_command(ARM, [ARM, GRIPPER])
    assert gate.timeout_steps == 0


def test_a_topic_without_publisher_is_not_awaited_but_one_command_is():
    gate = LockstepGate(paced=False)
    assert gate.on_command(ARM, [ARM])            # the gripper topic has no publisher
    gate.stepped()
    assert not gate.on_pacing_done([ARM]), 'no command since the step: not due'


def test_timeout_steps_without_commands_and_counts_them_per_episode():
    gate = LockstepGate(paced=False)
    assert gate.on_timeout([ARM, GRIPPER])
    gate.stepped()
    assert not gate.on_command(ARM, [ARM, GRIPPER])
    assert gate.on_timeout([ARM, GRIPPER])        # the gripper never answered
    assert gate.timeout_steps == 2
    gate.reset_episode()
    assert gate.timeout_steps == 0


def test_pacing_holds_a_due_step_until_the_period_passed():
    gate = LockstepGate(paced=True)
    assert gate.on_command(ARM, [ARM]), 'the first step needs no pacing wait'
    gate.stepped()
    assert not gate.on_command(ARM, [ARM]), 'commands complete, but the pacing period has not passed'
    assert gate.on_pacing_done([ARM])


def test_commands_after_a_reset_answer_the_previous_episode_until_the_first_step():
    gate = LockstepGate(paced=False)
    assert not gate.command_is_stale()
    gate.on_command(ARM, [ARM, GRIPPER])
    gate.reset_episode()
    assert gate.command_is_stale()
    assert not gate.on_command(GRIPPER, [ARM, GRIPPER]), 'the arm command before the reset was cleared'
    assert gate.on_timeout([ARM, GRIPPER])
    gate.stepped()
    assert not gate.command_is_stale()
