import os

from setuptools import find_packages, setup

PACKAGE = 'dynamo_util'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        (os.path.join('share', PACKAGE), ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='dynamo-ros developers',
    maintainer_email='dev@dynamo-ros.org',
    description="rclpy utilities shared by the dynamo-ros nodes and tools: a node executable's main() and a "
                'service client that waits for its answer.',
    license='MIT',
    extras_require={'test': ['pytest']},
)
