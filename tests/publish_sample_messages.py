"""Publishes one fixed Embedding and ActionChunk per period until interrupted.

Run as a separate process by test_messages_over_dds.py, so the messages cross a real process
boundary over Fast DDS. The field values are built by sample_messages(), which the test uses to
know what must arrive.
"""

import sys

from builtin_interfaces.msg import Duration, Time
from rclpy.node import Node

from dynamo_msgs.msg import ActionChunk, Embedding
from dynamo_util.node_main import run_node


def sample_messages() -> tuple[Embedding, ActionChunk]:
    embedding = Embedding()
    embedding.header.stamp = Time(sec=1700000000, nanosec=123456789)
    embedding.header.frame_id = 'camera_color_optical_frame'
    embedding.encoder_name = 'resnet18'
    embedding.encoder_checksum = '0123456789abcdef'
    embedding.camera_names = ['front', 'wrist']
    embedding.camera_dims = [3, 2]
    embedding.data = [0.5, -1.25, 3.0e-7, 1.0e6, -0.0]
    chunk = ActionChunk()
    chunk.header.stamp = Time(sec=1700000000, nanosec=123456789)
    chunk.policy_name = 'mlp'
    chunk.encoder_checksum = '0123456789abcdef'
    chunk.action_names = ['joint1', 'joint2', 'drive_joint']
    chunk.horizon = 2
    chunk.action_dim = 3
    chunk.step_period = Duration(sec=0, nanosec=100_000_000)
    chunk.data = [0.1, 0.2, 0.3, -0.1, -0.2, 0.85]
    return embedding, chunk


class SamplePublisher(Node):
    def __init__(self):
        super().__init__('sample_message_publisher')
        self.embedding, self.chunk = sample_messages()
        self.embedding_pub = self.create_publisher(Embedding, 'sample_embedding', 10)
        self.chunk_pub = self.create_publisher(ActionChunk, 'sample_action_chunk', 10)
        self.create_timer(0.1, self._publish)

    def _publish(self) -> None:
        self.embedding_pub.publish(self.embedding)
        self.chunk_pub.publish(self.chunk)


if __name__ == '__main__':
    sys.exit(run_node(SamplePublisher, 'publish_sample_messages', sys.argv))
