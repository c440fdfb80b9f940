"""The main() of a node executable: start rclpy, build the node, spin it, shut down cleanly.

    def main(args=None) -> int:
        return run_node(MyNode, 'my_node', args, parameter_errors=(ParameterError,))

Exit codes: 0 after Ctrl-C, SIGTERM (ros2 launch escalates to it) or a shutdown from elsewhere;
2 when the node cannot start with its parameters; 1 when it fails while running. Expected
failures are one line `<name>: error: <message>` on stderr, without a traceback; an exception the
caller did not list is a bug and keeps its traceback.
"""

from __future__ import annotations

import gc
import signal
import sys
from typing import Callable, TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

EXIT_RUNTIME_ERROR = 1
EXIT_PARAMETER_ERROR = 2

NodeT = TypeVar('NodeT', bound=Node)


def run_node(make_node: Callable[[], NodeT], name: str, args: list[str] | None = None, *,
             parameter_errors: tuple[type[Exception], ...] = (),
             runtime_errors: tuple[type[Exception], ...] = (),
             start: Callable[[NodeT], None] | None = None,
             on_shutdown: Callable[[NodeT], None] | None = None) -> int:
    """Run the node `make_node()` builds until shutdown and return the process exit code.

    start(node), if given, finishes starting the node before it spins (e.g. a lifecycle autostart
    or a process-wide setting read from its validated parameters). An exception of
    `parameter_errors` raised by make_node or start gives exit code 2, one of `runtime_errors`
    raised at any time exit code 1. on_shutdown(node), if given, runs before the node is destroyed
    (e.g. to close a simulator); a second Ctrl-C while shutting down cuts it short quietly.
    """
    try:
        rclpy.init(args=args)
    except KeyboardInterrupt:   # a Ctrl-C before rclpy's own signal handler is in place
        return 0
    node = None
    spinning = False
    exit_code = 0
    try:
        node = make_node()
        if start is not None:
            start(node)
        spinning = True
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as error:
        if rclpy.ok():
            if not spinning and isinstance(error, parameter_errors):
                exit_code = _report(name, error, EXIT_PARAMETER_ERROR)
            elif isinstance(error, runtime_errors):
                exit_code = _report(name, error, EXIT_RUNTIME_ERROR)
            else:
                raise
        # Otherwise SIGTERM shut the context down from rclpy's signal handler, and the executor
        # failed on the shut-down context (e.g. building its wait set) instead of raising
        # ExternalShutdownException: a requested shutdown, not a failure.
    finally:
        try:
            if node is not None:
                if on_shutdown is not None:
                    on_shutdown(node)
                node.destroy_node()
        except KeyboardInterrupt:  # a second Ctrl-C while shutting down
            pass
        rclpy.try_shutdown()
    # The node is gone; what is left is the interpreter's exit. Its final garbage collection over
    # torch's objects took 1-2 s here (ros2 launch escalates to SIGTERM after 5 s); frozen objects
    # are skipped (0.25 s). A second Ctrl-C meanwhile (a double Ctrl-C in a terminal; ros2 launch
    # without a tty forwards its own SIGINT on top of the group's) is ignored: raising would print
    # a KeyboardInterrupt traceback from an atexit callback, dying of it would report exit code -2.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.freeze()
    return exit_code


def _report(name: str, error: Exception, exit_code: int) -> int:
    print(f'{name}: error: {error}', file=sys.stderr, flush=True)
    return exit_code
