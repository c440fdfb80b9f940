import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = 'dynamo_bringup'

setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={'': ['*.yaml', '*.xml']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        (os.path.join('share', PACKAGE), ['package.xml']),
        (os.path.join('share', PACKAGE, 'launch'), glob('launch/*')),
        (os.path.join('share', PACKAGE, 'config'), glob('config/*')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='dynamo-ros developers',
    maintainer_email='dev@dynamo-ros.org',
    description=('Launch files, per-robot configs, the node graph, closed-loop evaluation and the end-to-end '
                 'demo of dynamo-ros for the xArm kitchen and the Allegro hand.'),
    license='MIT',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'demo = dynamo_bringup.demo:main',
            'evaluate = dynamo_bringup.evaluate:main',
        ],
    },
)
