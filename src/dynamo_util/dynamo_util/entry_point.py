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
import signal
from typing import Callable

EXIT_INTERRUPTED = 0   # as run_node exits after a Ctrl-C


def main_of(module: str) -> Callable[[], int]:
    """Return an entry point that imports `module` and returns its main()'s exit code.

    Called where the console script imports its entry point, it notes a Ctrl-C from then until the
    entry point runs (the script's lines in between cannot catch one), and the entry point then
    exits at once. A Ctrl-C while `module` imports ends the process too. Both exit with code 0 and
    no output; from main() on, a Ctrl-C is main()'s to handle.
    """
    interrupted = []
    signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum))

    def main() -> int:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if interrupted:
            return EXIT_INTERRUPTED
        try:
            module_main = importlib.import_module(module).main
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        return module_main()

    main.__doc__ = f'Run {module}.main(); a Ctrl-C before it runs exits quietly with code 0.'
    return main
