"""main_of: a node executable's entry point returns its main()'s exit code, and 0 on a Ctrl-C before main() runs.

A Ctrl-C before main() ends the process, so those cases run in a child interpreter. The same through
the real node executables and a real SIGINT: tests/test_console_scripts.py.
"""

import os
import signal
import subprocess
import sys

import pytest

from dynamo_util.entry_point import main_of


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """Write importable modules into a fresh directory on sys.path; return a function (name, source) -> name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> str:
        (tmp_path / f'{name}.py').write_text(source)
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return write


def run_entry_point(tmp_path, module_source: str, signal_before_main: bool) -> subprocess.CompletedProcess:
    """Run main_of('node_module')() in a child interpreter, with a SIGINT before the call if asked."""
    (tmp_path / 'node_module.py').write_text(module_source)
    script = ('import os, signal, sys\n'
              'from dynamo_util.entry_point import main_of\n'
              "main = main_of('node_module')\n"
              + ('os.kill(os.getpid(), signal.SIGINT)\n' if signal_before_main else '')
              + 'sys.exit(main())\n')
    return subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, 'PYTHONPATH': os.pathsep.join([str(tmp_path), *sys.path])})


def test_returns_the_exit_code_of_the_modules_main_and_restores_ctrl_c(modules):
    name = modules('node_exiting_3', 'def main():\n    return 3\n')
    assert main_of(name)() == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_before_main_runs_exits_0_quietly_without_importing_the_module(tmp_path):
    result = run_entry_point(tmp_path, 'print("imported")\ndef main():\n    return 3\n', signal_before_main=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, '', '')


def test_a_ctrl_c_while_the_module_imports_exits_0_quietly(tmp_path):
    source = 'import os, signal\nos.kill(os.getpid(), signal.SIGINT)\nprint("imported")\ndef main():\n    return 3\n'
    result = run_entry_point(tmp_path, source, signal_before_main=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, '', '')


def test_a_ctrl_c_in_main_is_main_s_to_handle(modules):
    name = modules('node_interrupted_in_main', 'def main():\n    raise KeyboardInterrupt\n')
    with pytest.raises(KeyboardInterrupt):
        main_of(name)()


def test_an_import_error_is_not_hidden(modules):
    name = modules('node_with_a_broken_import', 'import no_such_module_anywhere\n')
    with pytest.raises(ModuleNotFoundError):
        main_of(name)()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
