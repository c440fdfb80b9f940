#!/usr/bin/env python3
"""Transport floor of the latency benches: a node that answers each input message at once.

    python bench/transport_relay.py --input TYPE TOPIC [--reliability reliable|best_effort] [--depth N]
                                    --output TYPE TOPIC TEMPLATE [--output TYPE TOPIC TEMPLATE ...]

A plain rclpy node (rclpy.spin) that subscribes to TOPIC and, in the subscription callback,
publishes every --output: the message stored in the file TEMPLATE (rclpy.serialization CDR), the
input's header.stamp copied into its header if it has one. It computes nothing, so a bench that
streams to it the input a real node gets and receives what that node sends measures what any two
ROS 2 Python processes pay for that exchange (DDS both ways, rclpy taking, deserialising and
serialising the messages), whatever the node does. TYPE is package/msg/Name, e.g.
sensor_msgs/msg/Image. Outputs go out reliable, keep last 10, as encoder_node and policy_node
publish theirs.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message

from dynamo_util.node_main import run_node

RELIABILITIES = {'reliable': ReliabilityPolicy.RELIABLE, 'best_effort': ReliabilityPolicy.BEST_EFFORT}


def message_type(name: str):
    """Return the Python class of a message type named package/msg/Name."""
    package, kind, type_name = name.split('/')
    if kind != 'msg':
        raise ValueError(f'{name!r} is not a message type (package/msg/Name)')
    return getattr(importlib.import_module(f'{package}.msg'), type_name)


class TransportRelay(Node):
    def __init__(self, input_type, input_topic: str, input_qos: QoSProfile, outputs: list[tuple[str, object]]):
        super().__init__('transport_relay')
        self._outputs = [(self.create_publisher(type(msg), topic, 10), msg) for topic, msg in outputs]
        self.create_subscription(input_type, input_topic, self._relay, input_qos)

    def _relay(self, msg) -> None:
        for publisher, output in self._outputs:
            if hasattr(output, 'header'):
                output.header.stamp = msg.header.stamp
            publisher.publish(output)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--input', nargs=2, metavar=('TYPE', 'TOPIC'), required=True,
                        help='message type and topic to subscribe to')
    parser.add_argument('--reliability', choices=sorted(RELIABILITIES), default='reliable',
                        help='reliability of the input subscription (default reliable)')
    parser.add_argument('--depth', type=int, default=10, help='keep-last depth of the input subscription (default 10)')
    parser.add_argument('--output', nargs=3, action='append', metavar=('TYPE', 'TOPIC', 'TEMPLATE'), required=True,
                        help='publish the message serialised in TEMPLATE on TOPIC for each input (repeatable)')
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    input_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=args.depth,
                           reliability=RELIABILITIES[args.reliability])
    outputs = [(topic, deserialize_message(Path(template).read_bytes(), message_type(type_name)))
               for type_name, topic, template in args.output]
    return run_node(lambda: TransportRelay(message_type(args.input[0]), args.input[1], input_qos, outputs),
                    'transport_relay')


if __name__ == '__main__':
    raise SystemExit(main())
