"""encoder_node as a real process over DDS: images in, embeddings out, errors survived or refused."""

import io
import re
import signal
import struct
import time
import zlib

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from PIL import Image as PILImage
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from dynamo_encoder.artifact import EncoderArtifact
from dynamo_msgs.msg import Embedding

pytestmark = pytest.mark.ros

STARTUP_TIMEOUT_S = 60.0   # python + torch import on a loaded 2-core machine
FRONT_TOPIC = '/camera/color/image_raw'
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope='module')
def artifacts(tmp_path_factory):
    """Small randomly initialised encoders (32x32 input): one camera and two cameras."""
    root = tmp_path_factory.mktemp('encoders')
    paths = {}
    for key, cameras, seed in (('one', ['front'], 0), ('two', ['front', 'wrist'], 1)):
        paths[key] = root / f'{key}_camera.pt'
        EncoderArtifact.random_init('resnet_small', cameras, (32, 32), seed=seed).save(paths[key])
    return paths


def stamp_of(nanoseconds):
    from builtin_interfaces.msg import Time
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def nanoseconds_of(stamp):
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def raw_image_msg(rgb, stamp_ns, encoding='rgb8', frame_id='camera_color_optical_frame'):
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding, step=rgb.shape[1] * 3)
    pixels = rgb[:, :, ::-1] if encoding == 'bgr8' else rgb
    msg.data = np.ascontiguousarray(pixels).tobytes()
    msg.header.stamp = stamp_of(stamp_ns)
    msg.header.frame_id = frame_id
    return msg


def png_image_msg(rgb, stamp_ns):
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format='PNG')
    msg = CompressedImage(format='png', data=buffer.getvalue())
    msg.header.stamp = stamp_of(stamp_ns)
    msg.header.frame_id = 'wrist_camera'
    return msg


def random_image(rng, height=40, width=52):
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def encoded(rgb, fmt):
    buffer = io.BytesIO()
    PILImage.fromarray(rgb).save(buffer, format=fmt)
    return buffer.getvalue()


def png_declaring(width, height):
    """Return a decompression bomb: a tiny PNG whose header declares width x height (CRC fixed)."""
    data = bytearray(encoded(np.zeros((8, 8, 3), np.uint8), 'PNG'))
    data[16:24] = struct.pack('>II', width, height)   # IHDR width and height, after signature, length, type
    data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def start_encoder(ros_processes, checkpoint, *extra):
    return ros_processes.start(
        ['encoder_node', '--ros-args', '-p', f'checkpoint:={checkpoint}', '-p', 'device:=cpu',
         '-p', 'threads:=1', *extra], name='encoder_node')


def publish_until(ros_node, publish, done, timeout, what, period=0.05):
    """Call publish(i) every `period` s until done() (best-effort delivery may lose a frame)."""
    deadline = time.monotonic() + timeout
    i = 0
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f'timed out after {timeout} s waiting for {what}')
        publish(i)
        i += 1
        ros_node.spin_for(period)


def diagnostics_values(array_msg):
    (status,) = [s for s in array_msg.status if s.name.startswith('encoder_node')]
    return {kv.key: kv.value for kv in status.values}


def test_embedding_of_a_published_image_equals_the_offline_encoding(ros_processes, ros_node, artifacts):
    embeddings = ros_node.collect(Embedding, 'embedding')
    publisher = ros_node.node.create_publisher(Image, FRONT_TOPIC, qos_profile_sensor_data)
    node = start_encoder(ros_processes, artifacts['one'])
    ros_node.wait_for_subscriber(FRONT_TOPIC, timeout=STARTUP_TIMEOUT_S)

    rng = np.random.default_rng(0)
    sent = {}   # stamp -> RGB image, sent as bgr8 of another size than the encoder's 32x32 input

    def publish(i):
        stamp_ns = 1_700_000_000_000_000_000 + i * 33_000_000
        sent[stamp_ns] = random_image(rng)
        publisher.publish(raw_image_msg(sent[stamp_ns], stamp_ns, encoding='bgr8'))

    publish_until(ros_node, publish, lambda: len(embeddings) >= 3, 30, 'three embeddings')

    offline = EncoderArtifact.load(artifacts['one'])
    for embedding in embeddings:
        stamp_ns = nanoseconds_of(embedding.header.stamp)
        assert stamp_ns in sent, 'the embedding stamp must be the stamp of the image it encodes'
        assert embedding.header.frame_id == 'camera_color_optical_frame'
        assert embedding.encoder_name == offline.name
        assert embedding.encoder_checksum == offline.checksum
        assert list(embedding.camera_names) == ['front']
        assert list(embedding.camera_dims) == [offline.embedding_dim]
        # The training side embeds dataset frames with encode_batch: same numbers, same order.
        expected = offline.encode_batch({'front': sent[stamp_ns][None]})[0]
        np.testing.assert_allclose(np.asarray(embedding.data, np.float32), expected, rtol=0, atol=1e-5)
    exit_code = node.stop()
    log = node.log_path.read_text()   # output() needs the log file still open
    assert exit_code == 0 and 'Traceback' not in log, f'SIGINT must end the node cleanly; output:\n{log}'


def test_onnxruntime_backend_publishes_the_embedding_of_the_exported_encoder(ros_processes, ros_node, artifacts,
                                                                              tmp_path):
    from dynamo_encoder.export import export_onnx

    onnx_path = tmp_path / 'encoder.onnx'
    export_onnx(artifacts['one'], onnx_path)
    embeddings = ros_node.collect(Embedding, 'embedding')
    publisher = ros_node.node.create_publisher(Image, FRONT_TOPIC, qos_profile_sensor_data)
    node = start_encoder(ros_processes, onnx_path, '-p', 'backend:=onnxruntime')
    ros_node.wait_for_subscriber(FRONT_TOPIC, timeout=STARTUP_TIMEOUT_S)

    rng = np.random.default_rng(3)
    sent = {}

    def publish(i):
        stamp_ns = 1_700_000_000_000_000_000 + i * 33_000_000
        sent[stamp_ns] = random_image(rng)
        publisher.publish(raw_image_msg(sent[stamp_ns], stamp_ns))

    publish_until(ros_node, publish, lambda: len(embeddings) >= 2, 30, 'two embeddings')
    torch_encoder = EncoderArtifact.load(artifacts['one'])
    for embedding in embeddings:
        # Same checksum as the torch artifact: policies trained on it accept either backend.
        assert embedding.encoder_checksum == torch_encoder.checksum
        expected = torch_encoder.encode_batch({'front': sent[nanoseconds_of(embedding.header.stamp)][None]})[0]
        np.testing.assert_allclose(np.asarray(embedding.data, np.float32), expected, rtol=0, atol=1e-4)
    assert node.stop() == 0


def test_two_cameras_one_compressed_are_synchronised_by_stamp(ros_processes, ros_node, artifacts):
    embeddings = ros_node.collect(Embedding, 'embedding')
    front_topic, wrist_topic = '/front/image_raw', '/wrist/image_raw/compressed'
    front_pub = ros_node.node.create_publisher(Image, front_topic, RELIABLE)
    wrist_pub = ros_node.node.create_publisher(CompressedImage, wrist_topic, RELIABLE)
    start_encoder(ros_processes, artifacts['two'],
                  '-p', f'camera_topics:=[{front_topic},{wrist_topic}]',
                  '-p', 'camera_transports:=[raw,compressed]', '-p', 'slop:=0.01',
                  '-p', 'qos_reliability:=reliable', '-p', 'qos_depth:=10')
    ros_node.wait_for_subscriber(front_topic, timeout=STARTUP_TIMEOUT_S)
    ros_node.wait_for_subscriber(wrist_topic, timeout=STARTUP_TIMEOUT_S)

    rng = np.random.default_rng(1)
    pairs = {}   # set stamp (the newer of the two) -> (front image, wrist image)

    def publish(i):
        front_ns = 1_700_000_000_000_000_000 + i * 100_000_000
        wrist_ns = front_ns + 4_000_000            # 4 ms later: within the 10 ms slop
        front, wrist = random_image(rng), random_image(rng, 30, 30)
        pairs[wrist_ns] = (front, wrist)
        # The wrist frame of the previous pair's time + 50 ms has no front partner within slop.
        wrist_pub.publish(png_image_msg(random_image(rng, 30, 30), front_ns - 50_000_000))
        wrist_pub.publish(png_image_msg(wrist, wrist_ns))   # arrives before its partner
        front_pub.publish(raw_image_msg(front, front_ns))

    publish_until(ros_node, publish, lambda: len(embeddings) >= 3, 30, 'three two-camera embeddings', period=0.2)

    offline = EncoderArtifact.load(artifacts['two'])
    for embedding in embeddings:
        stamp_ns = nanoseconds_of(embedding.header.stamp)
        assert stamp_ns in pairs, f'{stamp_ns} is not the stamp of a synchronised pair'
        assert list(embedding.camera_names) == ['front', 'wrist']
        assert list(embedding.camera_dims) == [offline.embedding_dim] * 2
        front, wrist = pairs[stamp_ns]
        expected = offline.encode({'front': front, 'wrist': wrist})
        np.testing.assert_allclose(np.asarray(embedding.data, np.float32), expected, rtol=0, atol=1e-5)


def test_a_silent_camera_is_named_in_diagnostics_and_nothing_is_published(ros_processes, ros_node, artifacts):
    embeddings = ros_node.collect(Embedding, 'embedding')
    diagnostics = ros_node.collect(DiagnosticArray, '/diagnostics')
    publisher = ros_node.node.create_publisher(Image, '/front/image_raw', qos_profile_sensor_data)
    start_encoder(ros_processes, artifacts['two'], '-p', 'camera_topics:=[/front/image_raw,/wrist/image_raw]',
                  '-p', 'camera_transports:=[raw,raw]', '-p', 'diagnostics_period:=0.5')
    ros_node.wait_for_subscriber('/front/image_raw', timeout=STARTUP_TIMEOUT_S)
    image = random_image(np.random.default_rng(5))

    def warned_about_wrist():
        return any(s.level == s.WARN and 'wrist' in s.message and '/wrist/image_raw' in s.message
                   and float(diagnostics_values(d)['input_rate_hz.front']) > 0
                   for d in diagnostics for s in d.status)

    publish_until(ros_node, lambda i: publisher.publish(raw_image_msg(image, (i + 1) * 33_000_000)),
                  warned_about_wrist, 30, 'a diagnostics warning naming the silent wrist camera')
    assert not embeddings


def test_malformed_images_are_skipped_and_the_node_keeps_answering(ros_processes, ros_node, artifacts):
    embeddings = ros_node.collect(Embedding, 'embedding')
    diagnostics = ros_node.collect(DiagnosticArray, '/diagnostics')
    publisher = ros_node.node.create_publisher(Image, FRONT_TOPIC, RELIABLE)
    node = start_encoder(ros_processes, artifacts['one'], '-p', 'qos_reliability:=reliable', '-p', 'qos_depth:=10')
    ros_node.wait_for_subscriber(FRONT_TOPIC, timeout=STARTUP_TIMEOUT_S)
    ros_node.spin_until(lambda: ros_node.node.count_publishers('embedding') > 0, STARTUP_TIMEOUT_S, 'embedding')

    rng = np.random.default_rng(2)
    base_ns = 1_700_000_000_000_000_000
    good = raw_image_msg(random_image(rng), base_ns)
    unknown_encoding = raw_image_msg(random_image(rng), base_ns + 1, encoding='rgb8')
    unknown_encoding.encoding = 'yuv_weird'
    empty = Image(height=40, width=52, encoding='rgb8', step=52 * 3)
    empty.header.stamp = stamp_of(base_ns + 2)
    truncated = raw_image_msg(random_image(rng), base_ns + 3)
    truncated.data = truncated.data[:100]
    mono = Image(height=4, width=4, encoding='mono8', step=4, data=bytes(16))
    mono.header.stamp = stamp_of(base_ns + 4)
    malformed = [unknown_encoding, empty, truncated, mono]
    for msg in malformed:
        publisher.publish(msg)
    good_stamps = []

    def publish_good(i):
        good.header.stamp = stamp_of(base_ns + 1_000_000 * (i + 1))
        good_stamps.append(nanoseconds_of(good.header.stamp))
        publisher.publish(good)

    publish_until(ros_node, publish_good, lambda: embeddings, 30, 'an embedding after malformed images')
    ros_node.spin_until(lambda: diagnostics and diagnostics_values(diagnostics[-1])['frames_malformed'] == '4',
                        10, 'diagnostics counting the 4 malformed images')
    assert all(nanoseconds_of(e.header.stamp) in good_stamps for e in embeddings)
    assert node.returncode is None
    log = node.output()
    assert 'malformed image' in log and 'yuv_weird' in log, log


def test_diagnostics_report_rates_latency_and_stale_frames(ros_processes, ros_node, artifacts):
    embeddings = ros_node.collect(Embedding, 'embedding')
    diagnostics = ros_node.collect(DiagnosticArray, '/diagnostics')
    publisher = ros_node.node.create_publisher(Image, FRONT_TOPIC, RELIABLE)
    start_encoder(ros_processes, artifacts['one'], '-p', 'qos_reliability:=reliable', '-p', 'qos_depth:=100',
                  '-p', 'diagnostics_period:=0.5')
    ros_node.wait_for_subscriber(FRONT_TOPIC, timeout=STARTUP_TIMEOUT_S)
    ros_node.spin_until(lambda: ros_node.node.count_publishers('embedding') > 0, STARTUP_TIMEOUT_S, 'embedding')

    rng = np.random.default_rng(3)
    image = random_image(rng)
    now_ns = ros_node.node.get_clock().now().nanoseconds
    # A burst (as after a network hiccup) then a frame older than everything: the node must encode
    # the newest frames and count the rest as stale instead of queueing them.
    burst = [raw_image_msg(image, now_ns + i * 1_000_000) for i in range(40)]
    late = raw_image_msg(image, now_ns - 1_000_000_000)
    ros_node.spin_for(1.0)   # let the embedding subscription match before the burst
    for msg in burst:
        publisher.publish(msg)
    ros_node.spin_until(lambda: embeddings and nanoseconds_of(embeddings[-1].header.stamp) == now_ns + 39_000_000,
                        20, 'the embedding of the newest frame of the burst')
    publisher.publish(late)

    def settled():
        if not diagnostics:
            return False
        values = diagnostics_values(diagnostics[-1])
        return values['frames_received'] == '41'

    ros_node.spin_until(settled, 20, 'diagnostics after all 41 frames')
    values = diagnostics_values(diagnostics[-1])
    for key in ('input_rate_hz', 'output_rate_hz', 'latency_p50_ms', 'latency_p99_ms', 'processing_p50_ms',
                'processing_p99_ms', 'frames_dropped_stale',
                'frames_malformed', 'input_rate_hz.front', 'encoder_checksum'):
        assert key in values, f'{key} missing from {sorted(values)}'
    assert float(values['input_rate_hz']) > 0 and float(values['output_rate_hz']) > 0
    assert 0 < float(values['latency_p50_ms']) <= float(values['latency_p99_ms'])
    assert 0 < float(values['processing_p50_ms']) <= float(values['latency_p50_ms'])
    # Every received frame was either encoded or counted as stale (the late one at least).
    published, stale = int(values['outputs_published']), int(values['frames_dropped_stale'])
    assert len(embeddings) <= published   # the embedding writer keeps the last 10, a slow reader may miss some
    assert stale >= 1 and published + stale == 41
    stamps = [nanoseconds_of(e.header.stamp) for e in embeddings]
    assert stamps == sorted(stamps), 'embeddings never go back in time'


def test_missing_checkpoint_exits_nonzero_naming_the_file(ros_processes, tmp_path):
    missing = tmp_path / 'no_such_encoder.pt'
    node = start_encoder(ros_processes, missing)
    assert node.wait(timeout=STARTUP_TIMEOUT_S) == 2
    assert str(missing) in node.output()


def test_incompatible_checkpoint_exits_nonzero_naming_the_file(ros_processes, tmp_path):
    import torch
    not_an_encoder = tmp_path / 'policy.pt'
    torch.save({'weights': torch.zeros(3)}, not_an_encoder)
    node = start_encoder(ros_processes, not_an_encoder)
    assert node.wait(timeout=STARTUP_TIMEOUT_S) == 2
    assert str(not_an_encoder) in node.output()


@pytest.mark.parametrize('arguments, parameter', [
    (['-p', 'device:=tpu'], 'device'),
    (['-p', 'camera_transports:=[raw,compressed]'], 'camera_transports'),
    (['-p', 'qos_depth:=deep'], 'qos_depth'),
    (['-p', 'camera_topics:=[/a,/b,/c]', '-p', 'camera_transports:=[raw,raw,raw]'], 'camera_topics'),
])
def test_bad_parameter_exits_nonzero_naming_it(ros_processes, artifacts, arguments, parameter):
    node = start_encoder(ros_processes, artifacts['one'], *arguments)
    assert node.wait(timeout=STARTUP_TIMEOUT_S) == 2
    assert re.search(rf'\b{parameter}\b', node.output()), node.output()


def test_without_autostart_the_node_follows_lifecycle_transitions(ros_processes, ros_node, artifacts):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    from dynamo_util.service_client import ServiceClient

    embeddings = ros_node.collect(Embedding, 'embedding')
    topics = ['/front/image_raw', '/wrist/image_raw']
    publishers = [ros_node.node.create_publisher(Image, topic, qos_profile_sensor_data) for topic in topics]
    start_encoder(ros_processes, artifacts['two'], '-p', 'autostart:=false',
                  '-p', f'camera_topics:=[{",".join(topics)}]', '-p', 'camera_transports:=[raw,raw]')
    get_state = ServiceClient(ros_node.node, ros_node.executor, GetState, '/encoder_node/get_state',
                              resend_after_s=2.0)
    change_state = ServiceClient(ros_node.node, ros_node.executor, ChangeState, '/encoder_node/change_state')
    change_state.wait_until_available(STARTUP_TIMEOUT_S)

    def transition(transition_id):
        return change_state.call(ChangeState.Request(transition=Transition(id=transition_id)), timeout_s=30).success

    assert get_state.call(GetState.Request(), timeout_s=30).current_state.label == 'unconfigured'
    def subscribed():
        return [ros_node.node.count_subscribers(topic) for topic in topics]

    assert subscribed() == [0, 0]
    assert transition(Transition.TRANSITION_CONFIGURE)
    assert subscribed() == [0, 0], 'configure loads the model but does not subscribe'
    assert transition(Transition.TRANSITION_ACTIVATE)
    ros_node.spin_until(lambda: subscribed() == [1, 1], 20, 'both camera subscriptions')

    image = random_image(np.random.default_rng(4))

    def publish_pair(i):
        for publisher in publishers:
            publisher.publish(raw_image_msg(image, (i + 1) * 1_000_000))

    publish_until(ros_node, publish_pair, lambda: embeddings, 30, 'an embedding once active')
    assert transition(Transition.TRANSITION_DEACTIVATE)
    ros_node.spin_until(lambda: subscribed() == [0, 0], 20, 'unsubscribing from both cameras')
    assert get_state.call(GetState.Request(), timeout_s=30).current_state.label == 'inactive'


def test_a_frame_stamped_an_hour_ahead_is_refused_and_the_next_good_frame_is_encoded(ros_processes, ros_node,
                                                                                       artifacts):
    """It used to be encoded, and every good frame after it dropped as stale for an hour, without a word."""
    embeddings = ros_node.collect(Embedding, 'embedding')
    diagnostics = ros_node.collect(DiagnosticArray, '/diagnostics')
    publisher = ros_node.node.create_publisher(Image, FRONT_TOPIC, RELIABLE)
    node = start_encoder(ros_processes, artifacts['one'], '-p', 'qos_reliability:=reliable', '-p', 'qos_depth:=10',
                         '-p', 'diagnostics_period:=0.5')
    ros_node.wait_for_subscriber(FRONT_TOPIC, timeout=STARTUP_TIMEOUT_S)
    image = random_image(np.random.default_rng(6))
    clock = ros_node.node.get_clock()
    good_stamps = []

    def publish_good(i):
        good_stamps.append(clock.now().nanoseconds)
        publisher.publish(raw_image_msg(image, good_stamps[-1]))

    publish_until(ros_node, publish_good, lambda: embeddings, 30, 'a first embedding', period=0.1)
    future_ns = clock.now().nanoseconds + 3600 * 1_000_000_000
    publisher.publish(raw_image_msg(image, future_ns))
    after = clock.now().nanoseconds
    publish_until(ros_node, publish_good, lambda: nanoseconds_of(embeddings[-1].header.stamp) > after, 30,
                  'an embedding of a good frame sent after the future-stamped one', period=0.1)
    assert all(nanoseconds_of(e.header.stamp) in good_stamps for e in embeddings), 'the future frame was encoded'
    ros_node.spin_until(lambda: diagnostics and diagnostics_values(diagnostics[-1])['frames_future_stamped'] == '1',
                        10, 'diagnostics counting the future-stamped frame')
    assert any('frames refused for a stamp more than max_stamp_ahead' in status.message
               for d in diagnostics for status in d.status), [s.message for d in diagnostics for s in d.status]
    assert re.search(r'refusing a frame from camera .front.: stamped 3\d{3}\.\d{3} s ahead of the clock', node.output())


def test_a_simulated_clock_that_jumps_back_restarts_synchronisation(ros_processes, ros_node, artifacts):
    """A simulator restarted at t=0: frames of the new run are encoded at once, not after the old run's time."""
    from rosgraph_msgs.msg import Clock

    embeddings = ros_node.collect(Embedding, 'embedding')
    clock_publisher = ros_node.node.create_publisher(Clock, '/clock', 10)
    publisher = ros_node.node.create_publisher(Image, FRONT_TOPIC, RELIABLE)
    node = start_encoder(ros_processes, artifacts['one'], '-p', 'qos_reliability:=reliable', '-p', 'qos_depth:=10',
                         '-p', 'use_sim_time:=true')
    ros_node.wait_for_subscriber(FRONT_TOPIC, timeout=STARTUP_TIMEOUT_S)
    ros_node.wait_for_subscriber('/clock', timeout=STARTUP_TIMEOUT_S)
    image = random_image(np.random.default_rng(7))
    sim_start_ns = [1000 * 1_000_000_000]

    def step(i):   # one simulator step: the clock, then the camera frame of that time
        stamp_ns = sim_start_ns[0] + i * 100_000_000
        clock_publisher.publish(Clock(clock=stamp_of(stamp_ns)))
        publisher.publish(raw_image_msg(image, stamp_ns))

    publish_until(ros_node, step, lambda: embeddings, 30, 'an embedding in the first run', period=0.1)
    sim_start_ns[0] = 5 * 1_000_000_000
    publish_until(ros_node, step, lambda: nanoseconds_of(embeddings[-1].header.stamp) < 1000 * 1_000_000_000, 30,
                  'an embedding of the restarted simulation', period=0.1)
    assert "this node's clock went back" in node.output()


def test_decompression_bombs_and_mislabelled_images_are_refused_and_the_node_keeps_answering(ros_processes, ros_node,
                                                                                             artifacts):
    embeddings = ros_node.collect(Embedding, 'embedding')
    diagnostics = ros_node.collect(DiagnosticArray, '/diagnostics')
    topic = '/camera/color/image_raw/compressed'
    publisher = ros_node.node.create_publisher(CompressedImage, topic, RELIABLE)
    node = start_encoder(ros_processes, artifacts['one'], '-p', f'camera_topics:=[{topic}]',
                         '-p', 'camera_transports:=[compressed]', '-p', 'qos_reliability:=reliable',
                         '-p', 'qos_depth:=10', '-p', 'diagnostics_period:=0.5')
    ros_node.wait_for_subscriber(topic, timeout=STARTUP_TIMEOUT_S)
    ros_node.spin_until(lambda: ros_node.node.count_publishers('embedding') > 0, STARTUP_TIMEOUT_S, 'embedding')
    base_ns = 1_700_000_000_000_000_000
    image = random_image(np.random.default_rng(8))
    # Oversized (once these ended the node, or took 1.4 GB each): 2. Not what the format says: 2.
    hostile = [('png', png_declaring(15000, 15000)), ('png', png_declaring(10000, 10000)),
               ('jpeg', encoded(image, 'GIF')), ('jpeg', encoded(image, 'BMP'))]
    for i, (fmt, data) in enumerate(hostile):
        msg = CompressedImage(format=fmt, data=data)
        msg.header.stamp = stamp_of(base_ns + i)
        publisher.publish(msg)
    good_stamps = []

    def publish_good(i):
        good_stamps.append(base_ns + 1_000_000 * (i + 1))
        publisher.publish(png_image_msg(random_image(np.random.default_rng(i)), good_stamps[-1]))

    publish_until(ros_node, publish_good, lambda: embeddings, 30, 'an embedding after the hostile images')

    def counted():
        values = diagnostics and diagnostics_values(diagnostics[-1])
        return values and (values['frames_oversized'], values['frames_malformed']) == ('2', '2')

    ros_node.spin_until(counted, 10, 'diagnostics counting 2 oversized and 2 malformed images')
    assert all(nanoseconds_of(e.header.stamp) in good_stamps for e in embeddings)
    assert node.returncode is None
    log = node.output()
    assert 'refused before decoding' in log and 'max_image_pixels' in log, log
    assert 'the data is not a jpeg image' in log and 'Traceback' not in log, log


@pytest.fixture(scope='module')
def slow_artifact(tmp_path_factory):
    """resnet18 at 224 px: a forward pass of 0.1 s or more here, so a stream keeps the worker busy."""
    path = tmp_path_factory.mktemp('slow_encoder') / 'resnet18.pt'
    EncoderArtifact.random_init('resnet18', ['front'], (224, 224), seed=0).save(path)
    return path


def test_sigint_mid_inference_exits_cleanly(ros_processes, ros_node, slow_artifact):
    """Ctrl-C while the worker encodes: exit code 0, no traceback (once it published on a dead context)."""
    embeddings = ros_node.collect(Embedding, 'embedding')
    publisher = ros_node.node.create_publisher(Image, FRONT_TOPIC, RELIABLE)
    node = start_encoder(ros_processes, slow_artifact, '-p', 'qos_reliability:=reliable')
    ros_node.wait_for_subscriber(FRONT_TOPIC, timeout=STARTUP_TIMEOUT_S)
    image = random_image(np.random.default_rng(9), 240, 320)
    clock = ros_node.node.get_clock()
    publish_until(ros_node, lambda i: publisher.publish(raw_image_msg(image, clock.now().nanoseconds)),
                  lambda: len(embeddings) >= 3, 60, 'three embeddings', period=0.03)
    for _ in range(5):   # frames arrive faster than the forward pass: the worker is busy when the signal comes
        publisher.publish(raw_image_msg(image, clock.now().nanoseconds))
        ros_node.spin_for(0.03)
    node.popen.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    exit_code = node.wait(timeout=30)
    print(f'encoder_node exited {time.monotonic() - signalled:.2f} s after SIGINT (mid-inference)')
    log = node.output()
    assert exit_code == 0 and 'Traceback' not in log and 'RCLError' not in log, log
