"""main_of: a node executable's entry point returns its main()'s exit code, and 0 on a Ctrl-C while importing.

The same through the real node executables and a real SIGINT: tests/test_console_scripts.py.
"""

import os
import signal
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


def test_returns_the_exit_code_of_the_modules_main(modules):
    name = modules('node_exiting_3', 'def main():\n    return 3\n')
    assert main_of(name)() == 3


def test_a_ctrl_c_while_the_module_imports_exits_0(modules):
    name = modules('node_interrupted_while_importing', 'raise KeyboardInterrupt\n')
    assert main_of(name)() == 0


def test_a_ctrl_c_before_the_entry_point_runs_exits_0_without_importing_the_module(modules):
    name = modules('node_not_to_import', 'raise AssertionError("imported after a Ctrl-C")\n')
    entry_point = main_of(name)
    os.kill(os.getpid(), signal.SIGINT)   # the console script's lines between its import and the call
    assert entry_point() == 0
    assert name not in sys.modules


def test_a_ctrl_c_in_main_is_main_s_to_handle(modules):
    name = modules('node_interrupted_in_main', 'def main():\n    raise KeyboardInterrupt\n')
    with pytest.raises(KeyboardInterrupt):
        main_of(name)()


def test_an_import_error_is_not_hidden(modules):
    name = modules('node_with_a_broken_import', 'import no_such_module_anywhere\n')
    with pytest.raises(ModuleNotFoundError):
        main_of(name)()
