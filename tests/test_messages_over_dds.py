"""dynamo_msgs cross a process boundary over Fast DDS intact."""

import sys
from pathlib import Path

import numpy as np
import pytest
from publish_sample_messages import sample_messages

from dynamo_msgs.msg import ActionChunk, Embedding

pytestmark = pytest.mark.ros


def test_embedding_and_action_chunk_arrive_intact(ros_processes, ros_node):
    received_embeddings = ros_node.collect(Embedding, 'sample_embedding')
    received_chunks = ros_node.collect(ActionChunk, 'sample_action_chunk')
    publisher = ros_processes.start(
        [sys.executable, str(Path(__file__).with_name('publish_sample_messages.py'))], name='publisher')

    ros_node.spin_until(lambda: received_embeddings and received_chunks, timeout=30,
                        what='an Embedding and an ActionChunk from the publisher process')

    sent_embedding, sent_chunk = sample_messages()
    embedding, chunk = received_embeddings[0], received_chunks[0]
    assert embedding.header == sent_embedding.header
    assert embedding.encoder_name == sent_embedding.encoder_name
    assert embedding.encoder_checksum == sent_embedding.encoder_checksum
    assert list(embedding.camera_names) == list(sent_embedding.camera_names)
    assert list(embedding.camera_dims) == list(sent_embedding.camera_dims)
    np.testing.assert_array_equal(np.asarray(embedding.data, np.float32),
                                  np.asarray(sent_embedding.data, np.float32))
    assert chunk.header == sent_chunk.header
    assert (chunk.policy_name, chunk.encoder_checksum) == (sent_chunk.policy_name, sent_chunk.encoder_checksum)
    assert list(chunk.action_names) == list(sent_chunk.action_names)
    assert (chunk.horizon, chunk.action_dim, chunk.step_period) == (2, 3, sent_chunk.step_period)
    np.testing.assert_array_equal(np.asarray(chunk.data, np.float32).reshape(2, 3),
                                  np.asarray(sent_chunk.data, np.float32).reshape(2, 3))
    assert publisher.returncode is None, 'the publisher must still be running: it was not what we heard'
