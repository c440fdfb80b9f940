import os

from setuptools import find_packages, setup

PACKAGE = 'dynamo_encoder'

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
    description='DynaMo visual encoder: model, self-supervised pretraining, linear probe, encoder node.',
    license='MIT',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'encoder_node = dynamo_encoder.entry_points:encoder_node',
            'export_encoder = dynamo_encoder.export:main',
            'pretrain = dynamo_encoder.pretraining.cli:main',
            'probe = dynamo_encoder.probe:main',
        ],
    },
)
