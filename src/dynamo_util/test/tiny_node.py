"""A node executable built on run_node, run as a subprocess by test_node_main.py.

Parameter `fail`: '' spins until stopped, 'parameter' fails while being built (a bad parameter),
'runtime' fails in a timer callback while spinning, 'bug' raises an exception run_node was not
told about. Parameter `slow_shutdown`: seconds on_shutdown takes (time for a second Ctrl-C).
"""

import sys
import time

from rclpy.node import Node

from dynamo_util.node_main import run_node


class TinyNodeParameterError(ValueError):
    pass


class TinyNodeRuntimeError(RuntimeError):
    pass


class TinyNode(Node):
    def __init__(self):
        super().__init__('tiny_node')
        self.fail = self.declare_parameter('fail', '').value
        self.slow_shutdown = self.declare_parameter('slow_shutdown', 0.0).value
        if self.fail == 'parameter':
            raise TinyNodeParameterError("parameter 'fail' is 'parameter'")
        self.create_timer(0.05, self._tick)

    def _tick(self) -> None:
        if self.fail == 'runtime':
            raise TinyNodeRuntimeError('the tiny node failed while running')
        if self.fail == 'bug':
            raise KeyError('not an error run_node was told about')
        print('spinning', flush=True)


def shut_down(node: TinyNode) -> None:
    print('shutting down', flush=True)
    time.sleep(node.slow_shutdown)
    print('shut down', flush=True)


if __name__ == '__main__':
    sys.exit(run_node(TinyNode, 'tiny_node', sys.argv, parameter_errors=(TinyNodeParameterError,),
                      runtime_errors=(TinyNodeRuntimeError,), on_shutdown=shut_down))
