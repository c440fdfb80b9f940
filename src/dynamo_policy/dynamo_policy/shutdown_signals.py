"""SIGINT and SIGTERM end a node's spin while its ROS context still works, so it can send a last command.

rclpy's own signal handlers shut the context down the moment a signal arrives, before run_node's
on_shutdown runs: the node could publish nothing more, not even the hold that stops the robot.
Here a signal is noted, and a guard condition raises KeyboardInterrupt from its callback in the
spinning executor (run_node's Ctrl-C path, exit code 0): at a known place, not wherever the main
thread happens to be (inside rclpy, a KeyboardInterrupt came out as a RuntimeError traceback). A
pipe that the C-level signal handler writes to wakes the executor, which would otherwise sleep in
its wait set until the next timer or message (on sim time, perhaps never).
"""

from __future__ import annotations

import os
import signal
import threading

from rclpy.node import Node
from rclpy.signals import uninstall_signal_handlers


def interrupt_spin_on_signals(node: Node) -> None:
    """Replace rclpy's signal handlers; call from the main thread before spinning `node`."""
    uninstall_signal_handlers()
    received = []

    def interrupt_if_signalled() -> None:
        if received:
            received.clear()   # one KeyboardInterrupt per signal: a second one cuts on_shutdown short
            raise KeyboardInterrupt

    wake = node.create_guard_condition(interrupt_if_signalled)

    def note(signum, frame) -> None:
        received.append(signum)
        wake.trigger()   # the wake-up thread's trigger may have run before this handler

    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd)
    signal.signal(signal.SIGINT, note)
    signal.signal(signal.SIGTERM, note)

    def forward_wakeups() -> None:
        while os.read(read_fd, 1):
            try:
                wake.trigger()
            except Exception:   # rclpy's InvalidHandle (private type): the node is destroyed, nothing to wake
                return

    threading.Thread(target=forward_wakeups, name='signal-wakeup', daemon=True).start()
