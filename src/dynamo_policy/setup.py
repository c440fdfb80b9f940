import os

from setuptools import find_packages, setup

PACKAGE = 'dynamo_policy'

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
    description=('Imitation policies on frozen DynaMo embeddings (kNN, MLP, VQ-BeT, Diffusion Policy), '
                 'their training and the policy node.'),
    license='MIT',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'policy_node = dynamo_policy.entry_points:policy_node',
            'train_policy = dynamo_policy.training.cli:main',
        ],
    },
)
