"""The package's node executables (setup.py console_scripts), light to import: see dynamo_util.entry_point."""

from dynamo_util.entry_point import main_of

sim_node = main_of('dynamo_sim.sim_node')
