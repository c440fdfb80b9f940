"""Each package.xml declares exactly what its package needs, derived from the code.

On a ROS 2 install package.xml is all `rosdep install` reads: a missing key is a broken install and an
unused one a needless download.

For every ament_python package under src/ (a directory with package.xml and setup.py):
- runtime: every `import` / `from` statement (top-level or inside functions, relative ones aside) of
  its code (every .py file but setup.py and test/, launch files included), plus the workspace
  packages it runs or reads by name (a string argument naming one, `get_package_share_directory(
  'dynamo_data')`, `NodeSpec('dynamo_encoder', ...)`, or a command line `['pretrain', ...]` starting
  with another package's console script); its exec_depend + depend must equal that set exactly.
- tests: the imports of test/ (the test's own helper modules aside) plus pytest, the runner; those
  not already exec dependencies must equal its test_depend exactly.
A module maps to a key as: standard library -> none; a workspace package (src/*/package.xml) or a
ROS package (in the ament index, or in ROS_PACKAGES_NOT_INSTALLED_HERE) -> its name; anything else
-> THIRD_PARTY's rosdep key, which must list it. Keys ending in -pip are ours, defined in
rosdep/dynamo_ros.yaml.
"""
from __future__ import annotations

import ast
import os
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / 'src'
ROSDEP_YAML = REPO / 'rosdep' / 'dynamo_ros.yaml'
THIS_FILE = 'tests/test_package_manifests.py'

# Python modules that are neither standard library nor ROS packages -> rosdep key. Keys ending in -pip are
# pip-only ones that rosdistro lacks; rosdep/dynamo_ros.yaml defines them.
THIRD_PARTY = {
    'PIL': 'python3-pil',
    'apsw': 'python3-apsw-pip',
    'av': 'python3-av-pip',
    'hypothesis': 'python3-hypothesis',
    'isal': 'python3-isal-pip',
    'lz4': 'python3-lz4-pip',
    'matplotlib': 'python3-matplotlib',
    'mujoco': 'python3-mujoco-pip',
    'numpy': 'python3-numpy',
    'onnx': 'python3-onnx-pip',
    'onnxruntime': 'python3-onnxruntime-pip',
    'pandas': 'python3-pandas',
    'pyarrow': 'python3-pyarrow-pip',
    'pydantic': 'python3-pydantic-pip',
    'pytest': 'python3-pytest',
    'rosbags': 'python3-rosbags-pip',
    'torch': 'python3-torch-pip',
    'tqdm': 'python3-tqdm',
    'yaml': 'python3-yaml',
}
# ROS packages our code imports that the venv set-up (the ROS 2 core from PyPI wheels) does not install.
ROS_PACKAGES_NOT_INSTALLED_HERE = {'launch', 'launch_ros'}
# Runtime dependencies that no import statement of ours shows: package -> {key: what needs it}.
INDIRECT = {
    'dynamo_encoder': {'python3-onnxscript-pip': 'export.py: torch.onnx.export(dynamo=True) imports onnxscript'},
}
DEPENDENCY_TAGS = ('depend', 'build_depend', 'build_export_depend', 'exec_depend', 'test_depend', 'buildtool_depend')
CONSOLE_SCRIPT = re.compile(r'^\s*([\w.-]+)\s*=\s*[\w.]+\s*:\s*[\w.]+\s*$')


def ament_index_packages() -> set[str]:
    """Return the packages in the ament index of every prefix on AMENT_PREFIX_PATH and of this Python."""
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    prefixes += [os.environ.get('VIRTUAL_ENV', ''), sys.prefix]
    names = set()
    for prefix in filter(None, prefixes):
        index = Path(prefix) / 'share' / 'ament_index' / 'resource_index' / 'packages'
        if index.is_dir():
            names.update(p.name for p in index.iterdir())
    return names


@dataclass
class Manifest:
    name: str
    format: str
    build_type: str | None
    dependencies: dict[str, list[str]]  # tag -> keys in file order

    @classmethod
    def read(cls, path: Path) -> 'Manifest':
        root = ET.parse(path).getroot()
        return cls(name=root.findtext('name', '').strip(), format=root.get('format', ''),
                   build_type=root.findtext('export/build_type'),
                   dependencies={tag: [e.text.strip() for e in root.findall(tag)] for tag in DEPENDENCY_TAGS})

    @property
    def runtime(self) -> set[str]:
        return set(self.dependencies['exec_depend']) | set(self.dependencies['depend'])


def workspace_packages(src: Path = SRC) -> dict[str, Path]:
    """Package name -> directory, for every src/*/package.xml."""
    return {Manifest.read(xml).name: xml.parent for xml in sorted(src.glob('*/package.xml'))}


def python_packages(src: Path = SRC) -> list[str]:
    return [name for name, path in workspace_packages(src).items() if (path / 'setup.py').exists()]


def console_scripts(package_dir: Path) -> set[str]:
    """Return the executables setup.py's entry points install (`name = module:function` strings)."""
    tree = ast.parse((package_dir / 'setup.py').read_text())
    return {m.group(1) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and (m := CONSOLE_SCRIPT.match(node.value))}


@dataclass
class Uses:
    """What some source files use: top-level module -> files, workspace package -> files naming it."""

    modules: dict[str, set[str]] = field(default_factory=dict)
    named_packages: dict[str, set[str]] = field(default_factory=dict)


def scan(files: list[Path], base: Path, package_names: set[str], executables: dict[str, str]) -> Uses:
    """Find the imported top-level modules and the workspace packages named by string (see the module docstring)."""
    uses = Uses()
    for path in files:
        where = str(path.relative_to(base))
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    uses.modules.setdefault(alias.name.split('.')[0], set()).add(where)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                uses.modules.setdefault(node.module.split('.')[0], set()).add(where)
            named = []
            if isinstance(node, ast.Call):
                named += [*node.args, *(k.value for k in node.keywords)]
            if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                named += node.elts
                first = node.elts[0] if node.elts else None
                if isinstance(first, ast.Constant) and first.value in executables:  # a command line
                    uses.named_packages.setdefault(executables[first.value], set()).add(where)
            for arg in named:
                if isinstance(arg, ast.Constant) and arg.value in package_names:
                    uses.named_packages.setdefault(arg.value, set()).add(where)
    return uses


def python_files(package_dir: Path, tests: bool) -> list[Path]:
    files = sorted(p for p in package_dir.rglob('*.py') if '__pycache__' not in p.parts)
    in_test = [p for p in files if p.relative_to(package_dir).parts[0] == 'test']
    return in_test if tests else [p for p in files if p not in in_test and p != package_dir / 'setup.py']


class UnmappedModule(AssertionError):
    pass


def rosdep_key(module: str, ros_packages: set[str], package_names: set[str], package: str, files) -> str | None:
    """Return the package.xml key of an imported top-level module; None for the standard library."""
    if module in sys.stdlib_module_names or module == '__future__':
        return None
    if module in package_names or module in ros_packages or module in ROS_PACKAGES_NOT_INSTALLED_HERE:
        return module
    if module in THIRD_PARTY:
        return THIRD_PARTY[module]
    raise UnmappedModule(
        f'{package} imports {module!r} (in {", ".join(sorted(files))}), which is neither standard library, a '
        f'workspace package, nor a ROS package in the ament index: add it to THIRD_PARTY in {THIS_FILE} with '
        f'its rosdep key (for a pip-only module, a python3-<name>-pip key defined in rosdep/dynamo_ros.yaml)')


@dataclass
class Derived:
    runtime: dict[str, set[str]]  # key -> files that need it
    tests: dict[str, set[str]]


def derive(package: str, src: Path = SRC, ros_packages: set[str] | None = None) -> Derived:
    """Return the rosdep keys a package's code and its tests need, with the files that need each."""
    packages = workspace_packages(src)
    names = set(packages)
    ros_packages = ament_index_packages() if ros_packages is None else ros_packages
    executables = {exe: name for name in python_packages(src) for exe in console_scripts(packages[name])
                   if name != package}
    package_dir = packages[package]

    def keys(uses: Uses, ignored: set[str]) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {}
        for module, files in uses.modules.items():
            if module in ignored:
                continue
            key = rosdep_key(module, ros_packages, names, package, files)
            if key is not None:
                result.setdefault(key, set()).update(files)
        for name, files in uses.named_packages.items():
            if name != package:
                result.setdefault(name, set()).update(files)
        return result

    test_files = python_files(package_dir, tests=True)
    local_test_modules = {p.stem for p in test_files} | {p.parent.name for p in test_files}
    runtime = keys(scan(python_files(package_dir, tests=False), package_dir, names, executables), {package})
    if src == SRC:
        for key, why in INDIRECT.get(package, {}).items():
            runtime.setdefault(key, set()).add(why)
    tests = keys(scan(test_files, package_dir, names, executables), {package} | local_test_modules)
    if test_files:
        tests.setdefault(THIRD_PARTY['pytest'], set()).add('test/ (the test runner)')
    return Derived(runtime, tests)


def _describe(keys, needed_by: dict[str, set[str]]) -> str:
    return ', '.join(f'{k} (by {", ".join(sorted(needed_by[k]))})' if k in needed_by else k for k in sorted(keys))


def check_manifest(package: str, src: Path = SRC, ros_packages: set[str] | None = None) -> list[str]:
    """Differences between a package's package.xml and what its code needs, one message each."""
    manifest = Manifest.read(workspace_packages(src)[package] / 'package.xml')
    derived = derive(package, src, ros_packages)
    xml = f'src/{workspace_packages(src)[package].name}/package.xml'
    problems = []
    missing, unused = set(derived.runtime) - manifest.runtime, manifest.runtime - set(derived.runtime)
    if missing:
        problems.append(f'{package}: {xml} lacks exec_depend {_describe(missing, derived.runtime)}')
    if unused:
        problems.append(f'{package}: {xml} has exec_depend/depend that no code of it uses: {sorted(unused)}')
    expected_tests = set(derived.tests) - set(derived.runtime)
    declared_tests = set(manifest.dependencies['test_depend'])
    if expected_tests - declared_tests:
        problems.append(f'{package}: {xml} lacks test_depend '
                        f'{_describe(expected_tests - declared_tests, derived.tests)}')
    if declared_tests - expected_tests:
        problems.append(f'{package}: {xml} has test_depend that its tests do not use or that its code needs '
                        f'(exec_depend then): {sorted(declared_tests - expected_tests)}')
    for tag, keys in manifest.dependencies.items():
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            problems.append(f'{package}: {xml} lists {tag} {duplicates} more than once')
    return problems


PACKAGES = python_packages()


def test_the_workspace_has_python_packages():
    assert {'dynamo_data', 'dynamo_encoder', 'dynamo_policy', 'dynamo_sim', 'dynamo_bringup'} <= set(PACKAGES)


@pytest.mark.parametrize('package', PACKAGES)
def test_package_xml_declares_exactly_what_the_code_needs(package):
    problems = check_manifest(package)
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('xml', sorted(SRC.glob('*/package.xml')), ids=lambda p: p.parent.name)
def test_manifest_format_name_and_build_type(xml):
    manifest = Manifest.read(xml)
    assert manifest.format == '3', f'{xml}: format="{manifest.format}", expected 3'
    assert manifest.name == xml.parent.name, f'{xml}: <name>{manifest.name}</name> differs from its directory'
    expected = 'ament_python' if (xml.parent / 'setup.py').exists() else 'ament_cmake'
    assert manifest.build_type == expected, f'{xml}: build_type {manifest.build_type}, expected {expected}'


def test_pip_rosdep_keys_are_defined_and_used():
    defined = yaml.safe_load(ROSDEP_YAML.read_text())
    used = {key: name for name, path in workspace_packages().items()
            for keys in Manifest.read(path / 'package.xml').dependencies.values() for key in keys}
    pip_keys = {key for key in used if key.endswith('-pip')} | {k for k in THIRD_PARTY.values() if k.endswith('-pip')}
    undefined = sorted(pip_keys - set(defined))
    assert not undefined, f'rosdep keys not defined in rosdep/dynamo_ros.yaml: {undefined}'
    unused = sorted(set(defined) - set(used))
    assert not unused, f'rosdep/dynamo_ros.yaml defines keys that no package.xml uses: {unused}'
    for key in defined:
        for platform in ('debian', 'ubuntu'):
            assert defined[key][platform]['pip']['packages'], f'{key}: no pip package for {platform}'


# The derivation itself, on a made-up workspace.

def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _manifest(name: str, exec_depends=(), test_depends=(), build_type='ament_python') -> str:
    deps = ''.join(f'<exec_depend>{d}</exec_depend>' for d in exec_depends)
    deps += ''.join(f'<test_depend>{d}</test_depend>' for d in test_depends)
    return (f'<package format="3"><name>{name}</name>{deps}'
            f'<export><build_type>{build_type}</build_type></export></package>')


@pytest.fixture
def fake_src(tmp_path):
    src = tmp_path / 'src'
    _write(src / 'pkg_runner' / 'setup.py', "setup(entry_points={'console_scripts': ['run_it = pkg_runner.cli:main']})")
    _write(src / 'pkg_runner' / 'package.xml', _manifest('pkg_runner'))
    _write(src / 'pkg_msgs' / 'package.xml', _manifest('pkg_msgs', build_type='ament_cmake'))
    _write(src / 'pkg_a' / 'setup.py', 'import setuptools\n')
    _write(src / 'pkg_a' / 'package.xml', _manifest('pkg_a'))
    _write(src / 'pkg_a' / 'pkg_a' / '__init__.py', '"""Mentions pkg_runner in a docstring only."""\n')
    _write(src / 'pkg_a' / 'pkg_a' / 'core.py', '\n'.join([
        'import os.path',
        'import numpy as np',
        'from . import sibling',
        'from .sub import thing',
        'from pkg_a.other import x',
        'from pkg_msgs.msg import Thing',
        'def lazy():',
        '    import rclpy.node',
        "    return ['run_it', '--flag']",
        "print(f'pkg_runner is not named by this f-string')",
    ]))
    _write(src / 'pkg_a' / 'launch' / 'a.launch.py', 'from launch import LaunchDescription\n')
    _write(src / 'pkg_a' / 'test' / '_helpers.py', 'import yaml\n')
    _write(src / 'pkg_a' / 'test' / 'test_core.py', 'import _helpers\nimport pytest\nimport numpy\n'
                                                    "from pkg_a.core import lazy\nuse('pkg_msgs')\n")
    return src


def test_derivation_finds_every_import_and_named_package(fake_src):
    derived = derive('pkg_a', fake_src, ros_packages={'rclpy'})
    assert set(derived.runtime) == {'python3-numpy', 'pkg_msgs', 'rclpy', 'launch', 'pkg_runner'}
    assert derived.runtime['pkg_runner'] == {'pkg_a/core.py'}
    assert derived.runtime['launch'] == {'launch/a.launch.py'}
    assert set(derived.tests) == {'python3-yaml', 'python3-pytest', 'python3-numpy', 'pkg_msgs'}


def test_check_names_the_package_and_the_missing_and_unused_keys(fake_src):
    xml = fake_src / 'pkg_a' / 'package.xml'
    _write(xml, _manifest('pkg_a', ['python3-numpy', 'pkg_msgs', 'rclpy', 'python3-tqdm'], ['python3-yaml']))
    problems = '\n'.join(check_manifest('pkg_a', fake_src, ros_packages={'rclpy'}))
    assert re.search(r'pkg_a: .*lacks exec_depend launch \(by launch/a\.launch\.py\), pkg_runner', problems)
    assert "pkg_a: src/pkg_a/package.xml has exec_depend/depend that no code of it uses: ['python3-tqdm']" in problems
    assert 'lacks test_depend python3-pytest' in problems
    _write(xml, _manifest('pkg_a', ['python3-numpy', 'pkg_msgs', 'rclpy', 'launch', 'pkg_runner'],
                          ['python3-yaml', 'python3-pytest']))
    assert check_manifest('pkg_a', fake_src, ros_packages={'rclpy'}) == []


def test_an_unknown_module_asks_for_a_table_entry(fake_src):
    _write(fake_src / 'pkg_a' / 'pkg_a' / 'new.py', 'import somethingnew\n')
    message = r"pkg_a imports 'somethingnew' \(in pkg_a/new\.py\).*add it to THIRD_PARTY"
    with pytest.raises(UnmappedModule, match=message):
        derive('pkg_a', fake_src, ros_packages={'rclpy'})
