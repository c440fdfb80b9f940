# Loads the shared ROS test harness (tests/ros_harness.py) for every package's tests.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / 'tests'))
pytest_plugins = ['ros_harness']
