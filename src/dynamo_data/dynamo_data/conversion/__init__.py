"""rosbag2 -> LeRobot v3 dataset conversion (`convert_bags`); ROS-free, reads bags with rosbags."""
from .bag_reader import BagError
from .config import ConfigError, ConversionConfig, load_config
from .convert import ConversionError, convert_bag, convert_bags

__all__ = ['BagError', 'ConfigError', 'ConversionConfig', 'ConversionError', 'convert_bag', 'convert_bags',
           'load_config']
