"""LeRobot v3 datasets and the rosbag2 -> dataset converter: the data layer of dynamo-ros.

Imports neither torch nor rclpy, so bags convert on a data server with neither installed.
"""
from .layout import CAMERA_PREFIX, DatasetError
from .merge import merge_datasets
from .png import PNG_THREADS, encode_png
from .reader import LeRobotDataset
from .writer import DatasetWriter

__all__ = ['CAMERA_PREFIX', 'PNG_THREADS', 'DatasetError', 'DatasetWriter', 'LeRobotDataset', 'encode_png',
           'merge_datasets']
