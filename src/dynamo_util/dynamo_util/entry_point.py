"""Node executables whose start-up a Ctrl-C cannot turn into a traceback.

A node module imports torch or MuJoCo, which takes seconds, and `ros2 launch` sends SIGINT to every
node at once: a Ctrl-C right after launching lands in those imports, or in the console script's own
lines, before run_node handles it, and prints a KeyboardInterrupt traceback. So a package's console
scripts point at a light module whose entry points are made here:

    # dynamo_encoder/entry_points.py; setup.py: 'encoder_node = dynamo_encoder.entry_points:encoder_node'
    encoder_node = main_of('dynamo_encoder.encoder_node')

This module imports neither rclpy nor anything heavy, so the console script gets here at once.
"""

from __future__ import annotations

import importlib
import os
import signal
from typing import Callable

EXIT_INTERRUPTED = 0   # as run_node exits after a Ctrl-C


def _exit_quietly(signum, frame) -> None:
    # Nothing to clean up before main() runs. Raising KeyboardInterrupt instead would surface as a
    # traceback wherever it lands: a C extension's initialisation turns it into an ImportError.
    os._exit(EXIT_INTERRUPTED)


def main_of(module: str) -> Callable[[], int]:
    """Return an entry point that imports `module` and returns its main()'s exit code.

    Called where the console script imports its entry point, it makes a Ctrl-C end the process at
    once, with exit code 0 and no output, until `module` is imported: through the script's own
    lines and the module's imports. From main() on, a Ctrl-C is main()'s to handle.
    """
    signal.signal(signal.SIGINT, _exit_quietly)

    def main() -> int:
        try:
            module_main = importlib.import_module(module).main
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return module_main()

    main.__doc__ = f'Run {module}.main(); a Ctrl-C before it runs exits quietly with code 0.'
    return main
