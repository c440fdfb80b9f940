import os

from setuptools import find_packages, setup

PACKAGE = 'dynamo_sim'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={'': ['*.yaml', '*.xml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        (os.path.join('share', PACKAGE), ['package.xml']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='dynamo-ros developers',
    maintainer_email='dev@dynamo-ros.org',
    description='Simulated UFactory xArm7 kitchen and Wonik Allegro hand in MuJoCo, with the ROS interfaces of '
                'the real drivers, scripted experts and demonstration recording.',
    license='MIT',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'sim_node = dynamo_sim.entry_points:sim_node',
            'record_demos = dynamo_sim.recording:main',
        ],
    },
)
