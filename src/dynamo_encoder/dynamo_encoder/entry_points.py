"""The package's node executables (setup.py console_scripts), light to import: see dynamo_util.entry_point."""

from dynamo_util.entry_point import main_of

encoder_node = main_of('dynamo_encoder.encoder_node')
