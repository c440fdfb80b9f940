"""LeRobot v3 datasets and the rosbag2 -> dataset converter: the data layer of dynamo-ros.

Imports neither torch nor rclpy, so bags convert on a data server with neither installed.
"""
from .dataset import CAMERA_PREFIX, PNG_THREADS, DatasetError, DatasetWriter, LeRobotDataset, encode_png

__all__ = ['CAMERA_PREFIX', 'PNG_THREADS', 'DatasetError', 'DatasetWriter', 'LeRobotDataset', 'encode_png']
