"""ROS 2 node: camera images in, DynaMo embeddings out (`ros2 run dynamo_encoder encoder_node`).

A lifecycle node: configure loads the encoder artifact, activate subscribes to the cameras.
With `autostart` (the default) it configures and activates itself, so a plain `ros2 run` works.

Threading: subscription callbacks (single-threaded executor) only decode and synchronise frames
and put the newest complete set into a one-item slot; a dedicated inference thread takes the
newest set whenever it is free, encodes it and publishes. A set replaced in the slot before
inference took it is counted as dropped, so the node never builds a backlog and inference never
blocks the callbacks (torch releases the GIL while it computes). Measured with
bench/encoder_latency.py (96x96 images at 30 Hz, resnet_small, 2 loaded cores), this beat running
inference inside a MutuallyExclusive subscription callback on a MultiThreadedExecutor: p50 3.9-4.5
vs 5.3-7.8 ms, p99 12-13 vs 33-35 ms.

Untrusted input: each frame's stamp is checked against the node's clock before anything else
(FrameSynchronizer.admit: too far ahead is refused, a clock that went back restarts
synchronisation), a compressed image is decoded only as the codec its format field names and only
if its header declares at most `max_image_pixels`; every refusal is one throttled log line and a
counter on /diagnostics, whose message names the present cause.
"""
from __future__ import annotations

import array
import threading
import time
import traceback
from dataclasses import dataclass

import numpy as np
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image

from dynamo_data.image_codec import ImageDecodeError, ImageTooLargeError, decode_compressed_image, decode_image
from dynamo_encoder.artifact import ArtifactError, EncoderArtifact
from dynamo_encoder.frame_sync import FrameSynchronizer, FutureStampError, StampError, SyncedFrames
from dynamo_encoder.latest_slot import LatestSlot
from dynamo_encoder.onnx_encoder import OnnxEncoder
from dynamo_encoder.stream_stats import StreamStatistics
from dynamo_msgs.msg import Embedding
from dynamo_util.node_main import run_node

DEVICES = ('cpu', 'cuda', 'auto')
BACKENDS = ('torch', 'onnxruntime')
TRANSPORTS = ('raw', 'compressed')
RELIABILITIES = {'best_effort': ReliabilityPolicy.BEST_EFFORT, 'reliable': ReliabilityPolicy.RELIABLE}
DIAGNOSTIC_LEVELS = {'OK': DiagnosticStatus.OK, 'WARN': DiagnosticStatus.WARN, 'ERROR': DiagnosticStatus.ERROR}
STATISTICS_WINDOW_S = 5.0
LOG_THROTTLE_S = 5.0
STOP_LOG_PERIOD_S = 2.0   # while stopping, how often to say that a forward pass is still finishing

PARAMETERS = {
    # name: (default, description)
    'checkpoint': ('', 'Path of the encoder: the artifact encoder.pt written by `pretrain` (backend torch), or the '
                   '.onnx file written by `export_encoder --onnx` (backend onnxruntime).'),
    'backend': ('torch', "Inference engine: 'torch' (the artifact, CPU or CUDA) or 'onnxruntime' (the exported "
                '.onnx file, CPU; same embedding within 1e-4, faster than torch eager on CPUs).'),
    'device': ('auto', "Torch device: 'cpu', 'cuda', or 'auto' (cuda if available, else cpu with a warning)."),
    'threads': (0, "Torch CPU threads for inference, applied at start-up; 0 keeps torch's default."),
    'camera_topics': (['/camera/color/image_raw'],
                      "One image topic per camera, in the encoder artifact's camera order."),
    'camera_transports': (['raw'],
                          "Per camera topic: 'raw' (sensor_msgs/Image) or 'compressed' "
                          '(sensor_msgs/CompressedImage, jpeg/png, subscribed on the topic as given).'),
    'slop': (0.02, 'Seconds by which the header stamps of one synchronised frame set may differ.'),
    'sync_queue_size': (3, 'Newest frames kept per camera as candidates for synchronisation.'),
    'max_stamp_ahead': (0.5, "Seconds a frame's header stamp may be ahead of this node's clock. Frames stamped "
                        'further ahead are refused: one would hold back every later frame until the clock caught up '
                        'with it. Allow for clock offsets between machines and, with use_sim_time, for a frame '
                        'handled before the /clock message of its step.'),
    'max_image_pixels': (3840 * 2160, 'Largest image (width x height) decoded; a larger one is refused from its '
                         'header before decoding (a few kB of PNG can declare 15000x15000). Default 3840x2160, four '
                         'times a 1920x1080 camera: the encoder resizes every frame to its small input size anyway.'),
    'qos_reliability': ('best_effort', "Camera subscriptions' reliability: 'best_effort' (matches every publisher) "
                        "or 'reliable'. With its default 0.5 MB shared-memory segment Fast DDS loses most best-effort "
                        "images larger than that (e.g. 640x480 rgb8): use 'reliable' for those, or run every process "
                        'with the Fast DDS profile dynamo_bringup/config/fastdds_profile.xml, which sizes it.'),
    'qos_depth': (1, "Camera subscriptions' history depth (keep last)."),
    'diagnostics_period': (1.0, 'Seconds between /diagnostics messages.'),
    'autostart': (True, 'Configure and activate at start-up (a plain `ros2 run` then works).'),
}


class ParameterError(ValueError):
    """A parameter value the node cannot run with; the message names the parameter."""


class AutostartError(RuntimeError):
    """Configuring or activating at start-up failed for another reason than a parameter."""


@dataclass(frozen=True)
class Settings:
    checkpoint: str
    backend: str
    device: str
    camera_topics: tuple[str, ...]
    compressed: tuple[bool, ...]
    slop_ns: int
    sync_queue_size: int
    max_stamp_ahead_ns: int
    max_image_pixels: int
    qos: QoSProfile
    diagnostics_period: float


class EncoderNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__('encoder_node', **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self._settings: Settings | None = None
        self._encoder = None
        self._embedding_publisher = None
        self._diagnostics_publisher = None
        self._camera_subscriptions = []
        self._diagnostics_timer = None
        self._synchronizer: FrameSynchronizer | None = None
        self._statistics: StreamStatistics | None = None
        self._slot: LatestSlot | None = None
        self._inference_thread: threading.Thread | None = None
        self._last_clock_jump_ns = 0   # how far the clock went back the last time it did
        self.configure_error: Exception | None = None   # why the last configure failed

    # --- lifecycle -------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.configure_error = None
        try:
            settings = self._read_settings()
            self._encoder = self._load_encoder(settings)
        except ParameterError as exc:
            self.get_logger().error(f'cannot configure: {exc}')
            self.configure_error = exc
            return TransitionCallbackReturn.FAILURE
        except Exception as exc:  # rclpy would turn it into a bare ERROR transition without a word
            self.get_logger().error(f'cannot configure:\n{traceback.format_exc()}')
            self.configure_error = exc
            return TransitionCallbackReturn.FAILURE
        self._settings = settings
        self._embedding_publisher = self.create_lifecycle_publisher(Embedding, 'embedding', 10)
        self._diagnostics_publisher = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        cameras = ', '.join(f'{name} <- {topic}{" (compressed)" if compressed else ""}' for name, topic, compressed
                            in zip(self._encoder.camera_names, settings.camera_topics, settings.compressed))
        self.get_logger().info(
            f'loaded encoder {self._encoder.name} (checksum {self._encoder.checksum}) from {settings.checkpoint} '
            f'on {self._encoder.device}; cameras: {cameras}')
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        settings, camera_names = self._settings, list(self._encoder.camera_names)
        self._synchronizer = FrameSynchronizer(camera_names, settings.slop_ns, settings.sync_queue_size,
                                               settings.max_stamp_ahead_ns)
        self._statistics = StreamStatistics(camera_names, window_s=STATISTICS_WINDOW_S,
                                            refusals=('future_stamped', 'oversized'))
        self._slot = LatestSlot()
        self._inference_thread = threading.Thread(target=self._inference_loop, name='inference', daemon=True)
        self._inference_thread.start()
        for camera, topic, compressed in zip(camera_names, settings.camera_topics, settings.compressed):
            msg_type = CompressedImage if compressed else Image
            self._camera_subscriptions.append(self.create_subscription(
                msg_type, topic, lambda msg, camera=camera: self._on_image(camera, msg), settings.qos))
        self._diagnostics_timer = self.create_timer(settings.diagnostics_period, self._publish_diagnostics)
        self.get_logger().info('active: encoding the newest synchronised frame set')
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_pipeline()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop()
        return super().on_shutdown(state)

    def stop(self) -> None:
        """Stop inference and release everything (safe to call in any state, more than once)."""
        self._stop_pipeline()
        self._release()

    # --- parameters and model ----------------------------------------------------------------

    def _read_settings(self) -> Settings:
        value = {name: self.get_parameter(name).value for name in PARAMETERS}
        if not value['checkpoint']:
            raise ParameterError("parameter 'checkpoint' is empty: give the encoder artifact path "
                                 '(--ros-args -p checkpoint:=/path/to/encoder.pt)')
        if value['backend'] not in BACKENDS:
            raise ParameterError(f"parameter 'backend' is {value['backend']!r}; expected one of {list(BACKENDS)}")
        if value['backend'] == 'onnxruntime' and value['device'] == 'cuda':
            raise ParameterError("parameter 'device' is 'cuda' but backend 'onnxruntime' runs on the CPU here; "
                                 "use backend:=torch for CUDA")
        if value['device'] not in DEVICES:
            raise ParameterError(f"parameter 'device' is {value['device']!r}; expected one of {list(DEVICES)}")
        if value['threads'] < 0:
            raise ParameterError(f"parameter 'threads' is {value['threads']}; expected >= 0 (0 = torch default)")
        topics, transports = list(value['camera_topics']), list(value['camera_transports'])
        if not topics or any(not topic for topic in topics):
            raise ParameterError(f"parameter 'camera_topics' is {topics}; expected one non-empty topic per camera")
        if len(transports) != len(topics):
            raise ParameterError(
                f"parameter 'camera_transports' has {len(transports)} entries {transports} but 'camera_topics' has "
                f'{len(topics)}; give one transport per camera topic')
        for transport in transports:
            if transport not in TRANSPORTS:
                raise ParameterError(
                    f"parameter 'camera_transports' contains {transport!r}; expected one of {list(TRANSPORTS)}")
        if value['slop'] < 0:
            raise ParameterError(f"parameter 'slop' is {value['slop']}; expected >= 0 seconds")
        if value['sync_queue_size'] < 1:
            raise ParameterError(f"parameter 'sync_queue_size' is {value['sync_queue_size']}; expected >= 1")
        if value['max_stamp_ahead'] < 0:
            raise ParameterError(f"parameter 'max_stamp_ahead' is {value['max_stamp_ahead']}; expected >= 0 seconds")
        if value['max_image_pixels'] < 1:
            raise ParameterError(f"parameter 'max_image_pixels' is {value['max_image_pixels']}; expected >= 1")
        if value['qos_reliability'] not in RELIABILITIES:
            raise ParameterError(f"parameter 'qos_reliability' is {value['qos_reliability']!r}; "
                                 f'expected one of {list(RELIABILITIES)}')
        if value['qos_depth'] < 1:
            raise ParameterError(f"parameter 'qos_depth' is {value['qos_depth']}; expected >= 1")
        if value['diagnostics_period'] <= 0:
            raise ParameterError(f"parameter 'diagnostics_period' is {value['diagnostics_period']}; expected > 0")
        return Settings(
            checkpoint=value['checkpoint'], backend=value['backend'], device=value['device'],
            camera_topics=tuple(topics), compressed=tuple(t == 'compressed' for t in transports),
            slop_ns=int(round(value['slop'] * 1e9)), sync_queue_size=value['sync_queue_size'],
            max_stamp_ahead_ns=int(round(value['max_stamp_ahead'] * 1e9)), max_image_pixels=value['max_image_pixels'],
            qos=QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=value['qos_depth'],
                           reliability=RELIABILITIES[value['qos_reliability']]),
            diagnostics_period=value['diagnostics_period'])

    def _load_encoder(self, settings: Settings):
        try:
            if settings.backend == 'onnxruntime':
                encoder = OnnxEncoder.load(settings.checkpoint, threads=self.get_parameter('threads').value)
            else:
                encoder = EncoderArtifact.load(settings.checkpoint, device=self._torch_device(settings.device))
        except ArtifactError as exc:
            raise ParameterError(f"parameter 'checkpoint': {exc}") from exc
        if len(encoder.camera_names) != len(settings.camera_topics):
            raise ParameterError(
                f"parameter 'camera_topics' has {len(settings.camera_topics)} topics "
                f'{list(settings.camera_topics)} but the encoder {settings.checkpoint} was trained on '
                f'{len(encoder.camera_names)} cameras {list(encoder.camera_names)}; give one topic per camera, '
                'in that order')
        return encoder

    def _torch_device(self, device: str) -> str:
        if device == 'auto':
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
            if device == 'cpu':
                self.get_logger().warning(
                    '!!! device:=auto found no CUDA device: the encoder runs on the CPU, expect much higher '
                    'latency. Set device:=cpu to silence this warning. !!!')
        elif device == 'cuda' and not torch.cuda.is_available():
            raise ParameterError("parameter 'device' is 'cuda' but torch sees no CUDA device")
        return device

    def _release(self) -> None:
        if self._embedding_publisher is not None:
            self.destroy_lifecycle_publisher(self._embedding_publisher)
            self._embedding_publisher = None
        if self._diagnostics_publisher is not None:
            self.destroy_publisher(self._diagnostics_publisher)
            self._diagnostics_publisher = None
        self._encoder = None

    # --- frames in (executor thread) -----------------------------------------------------------

    def _on_image(self, camera: str, msg) -> None:
        synchronizer = self._synchronizer
        dropped_before = synchronizer.dropped_stale
        self._statistics.frame_received(camera)
        try:
            synced = self._admit_and_add(camera, msg)
        finally:   # also what a restart after a clock jump dropped, whatever became of this frame
            self._statistics.frames_dropped(synchronizer.dropped_stale - dropped_before)
        if synced is not None:
            replaced = self._slot.put(synced)
            if replaced is not None:
                self._statistics.frames_dropped(len(replaced.frames))

    def _admit_and_add(self, camera: str, msg) -> SyncedFrames | None:
        """Check the frame's stamp, decode it and offer it to the synchroniser; the set it completes, or None."""
        statistics, synchronizer, log = self._statistics, self._synchronizer, self.get_logger()
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        now_ns = self.get_clock().now().nanoseconds
        # Each refusal logs from its own line: rclpy throttles per call site.
        try:
            # A ROS-time clock reads 0 until the first /clock message: nothing to compare with yet.
            jump_ns = synchronizer.admit(stamp_ns, now_ns if now_ns > 0 else None)
        except FutureStampError as exc:
            statistics.frame_refused('future_stamped')
            log.warning(f'refusing a frame from camera {camera!r}: {exc}', throttle_duration_sec=LOG_THROTTLE_S)
            return None
        except StampError as exc:
            statistics.frame_malformed()
            log.warning(f'skipping a malformed image from camera {camera!r}: {exc}',
                        throttle_duration_sec=LOG_THROTTLE_S)
            return None
        if jump_ns:
            self._last_clock_jump_ns = jump_ns
            statistics.problem_seen('clock_jumped_back')
            log.warning(f"this node's clock went back: it is {jump_ns / 1e9:.3f} s behind frames already used "
                        '(simulator restarted? clock stepped?); synchronisation restarted',
                        throttle_duration_sec=LOG_THROTTLE_S)
        try:
            image = self._decode(msg)
        except ImageTooLargeError as exc:
            statistics.frame_refused('oversized')
            log.warning(f'refusing an image from camera {camera!r}: {exc} (parameter max_image_pixels)',
                        throttle_duration_sec=LOG_THROTTLE_S)
            return None
        except ImageDecodeError as exc:
            statistics.frame_malformed()
            log.warning(f'skipping a malformed image from camera {camera!r}: {exc}',
                        throttle_duration_sec=LOG_THROTTLE_S)
            return None
        except Exception:  # a decoder bug must not end the node: the next frame may decode
            statistics.frame_malformed()
            log.error(f'decoding an image from camera {camera!r} failed, skipped:\n{traceback.format_exc()}',
                      throttle_duration_sec=LOG_THROTTLE_S)
            return None
        return synchronizer.add(camera, stamp_ns, (image, msg.header))

    def _decode(self, msg):
        """Return the uint8 (H, W, 3) RGB pixels of an Image or CompressedImage; raise ImageDecodeError."""
        max_pixels = self._settings.max_image_pixels
        if isinstance(msg, CompressedImage):
            image = decode_compressed_image(msg.format, msg.data, max_pixels=max_pixels)
            source = f'format {msg.format!r}'
        else:
            image = decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data,
                                 max_pixels=max_pixels)
            source = f'encoding {msg.encoding!r}'
        if image.dtype != np.uint8 or image.shape[-1] != 3:
            raise ImageDecodeError(f'{source} gives {image.dtype} images with {image.shape[-1]} channel(s); '
                                   'the encoder needs colour (rgb8, bgr8, rgba8, bgra8, jpeg or png)')
        return image

    # --- inference (its own thread) ----------------------------------------------------------

    def _inference_loop(self) -> None:
        slot, encoder, statistics = self._slot, self._encoder, self._statistics
        camera_names = list(encoder.camera_names)
        camera_dims = [int(encoder.embedding_dim)] * len(camera_names)
        while True:
            synced: SyncedFrames | None = slot.take()
            if synced is None:
                return
            images = {name: image for name, (image, _) in zip(camera_names, synced.frames)}
            started = time.perf_counter()
            try:
                embedding = np.ascontiguousarray(encoder.encode(images), dtype=np.float32)
            except Exception:  # the node must outlive one bad frame set; the thread would die silently
                statistics.encode_failed()
                self.get_logger().error(f'encoding a frame set failed, skipped:\n{traceback.format_exc()}',
                                        throttle_duration_sec=LOG_THROTTLE_S)
                continue
            msg = Embedding()
            msg.header.stamp = Time(nanoseconds=synced.stamp_ns).to_msg()
            msg.header.frame_id = synced.frames[0][1].frame_id
            msg.encoder_name = encoder.name
            msg.encoder_checksum = encoder.checksum
            msg.camera_names = camera_names
            msg.camera_dims = camera_dims
            data = array.array('f')
            data.frombytes(embedding.tobytes())
            msg.data = data
            publisher = self._embedding_publisher
            if slot.closed or publisher is None:
                return
            try:
                publisher.publish(msg)
            except Exception:
                # Ctrl-C shuts the context down at once, possibly mid forward pass: nothing can be
                # published any more, and _stop_pipeline is about to close the slot.
                if not self.context.ok():
                    return
                self.get_logger().error(f'publishing an embedding failed:\n{traceback.format_exc()}',
                                        throttle_duration_sec=LOG_THROTTLE_S)
                continue
            statistics.output_published((self.get_clock().now().nanoseconds - synced.stamp_ns) / 1e9,
                                        time.perf_counter() - started)

    def _stop_pipeline(self) -> None:
        for subscription in self._camera_subscriptions:
            self.destroy_subscription(subscription)
        self._camera_subscriptions = []
        if self._diagnostics_timer is not None:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        if self._slot is not None:
            self._slot.close()
        if self._inference_thread is not None:
            # The worker finishes the set it is encoding, then finds the slot closed. It must be gone
            # before _release() destroys its publisher, so this waits as long as that forward pass takes.
            self._inference_thread.join(timeout=STOP_LOG_PERIOD_S)
            while self._inference_thread.is_alive():
                self.get_logger().info('stopping: waiting for the forward pass in progress to finish')
                self._inference_thread.join(timeout=STOP_LOG_PERIOD_S)
            self._inference_thread = None

    # --- diagnostics ---------------------------------------------------------------------------

    def _publish_diagnostics(self) -> None:
        statistics, settings, camera_names = self._statistics, self._settings, self._encoder.camera_names
        values = statistics.snapshot()
        values['clock_jumps_back'] = self._synchronizer.clock_jumps_back
        topics = dict(zip(camera_names, settings.camera_topics))
        silent = [f'camera {name!r} ({topics[name]})' for name in camera_names
                  if values[f'input_rate_hz.{name}'] == 0.0]
        if len(camera_names) > 1:
            unmatched = (f'no frame set with stamps within slop ({settings.slop_ns / 1e9:g} s), or stamps older '
                         'than the last set used')
        else:
            unmatched = 'every frame is stamped older than the last one used (did the camera clock go back?)'
        level, message = statistics.diagnose(values, silent, {
            'future_stamped': 'frames refused for a stamp more than max_stamp_ahead '
                              f"({settings.max_stamp_ahead_ns / 1e9:g} s) ahead of this node's clock: {{count}} "
                              '(the camera clock, or use_sim_time?)',
            'oversized': f'images refused for more than max_image_pixels ({settings.max_image_pixels}): {{count}}',
            'malformed': 'malformed images skipped: {count}',
            'encode_failures': 'frame sets that failed to encode: {count}',
            'clock_jumped_back': f"this node's clock went back {self._last_clock_jump_ns / 1e9:.3f} s, "
                                 'synchronisation restarted',
        }, unmatched)
        status = DiagnosticStatus(name=f'{self.get_name()}: embedding', hardware_id=self._encoder.checksum,
                                  level=DIAGNOSTIC_LEVELS[level], message=message)
        values['encoder_checksum'] = self._encoder.checksum
        status.values = [KeyValue(key=key, value=f'{value:.3f}' if isinstance(value, float) else str(value))
                         for key, value in values.items()]
        array_msg = DiagnosticArray(status=[status])
        array_msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_publisher.publish(array_msg)


def _start(node: EncoderNode) -> None:
    """Apply the torch thread count (process-wide, so the entry point's job), then autostart."""
    threads = node.get_parameter('threads').value
    if threads > 0:   # configure refuses a negative value
        torch.set_num_threads(threads)
    if not node.get_parameter('autostart').value:
        return
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        if isinstance(node.configure_error, ParameterError):
            raise node.configure_error
        raise AutostartError(f'configure failed: {node.configure_error!r} (traceback above)')
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        raise AutostartError('activate failed')


def main(args=None) -> int:
    # ParameterException: a parameter of the wrong type (e.g. -p threads:=many)
    return run_node(EncoderNode, 'encoder_node', args, parameter_errors=(ParameterError, ParameterException),
                    runtime_errors=(AutostartError,), start=_start, on_shutdown=EncoderNode.stop)


if __name__ == '__main__':
    raise SystemExit(main())
