import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'dynamo_data'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        (os.path.join('share', PACKAGE), ['package.xml']),
        (os.path.join('share', PACKAGE, 'config'), glob('config/*')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='dynamo-ros developers',
    maintainer_email='dev@dynamo-ros.org',
    description='LeRobot v3 datasets and the rosbag2 -> dataset converter of dynamo-ros (no torch, no rclpy).',
    license='MIT',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'convert_bags = dynamo_data.conversion.cli:main',
            'merge_datasets = dynamo_data.merge:main',
        ],
    },
)
