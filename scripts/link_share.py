"""Install the editable Python packages' ROS files into a prefix, as `colcon build --symlink-install` does.

  python scripts/link_share.py PREFIX SOURCE_ROOT PACKAGE...

Editable installs skip setup.py's data_files. Per package this registers it in the ament index,
links package.xml and every file under launch/ and config/ into share/<package>/ one by one
(`ros2 launch` walks share/<package> with os.walk, which does not follow directory links), and
links its console scripts into lib/<package>/ (where `ros2 run` and launch_ros look for them).
Links into the package's sources that no longer match a source file are removed, so a file added
or deleted since the last run shows up or disappears on the next one; edits need no rerun.
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

SHARED_DIRS = ('launch', 'config')


def link(link_path: Path, target: Path) -> None:
    """Make `link_path` a symlink to `target`, replacing a file or link already there."""
    link_path.parent.mkdir(parents=True, exist_ok=True)
    if link_path.is_symlink() or link_path.is_file():
        link_path.unlink()
    link_path.symlink_to(target)


def link_share(prefix: Path, source: Path, package: str) -> None:
    """Register `package` (sources in `source`) in prefix's ament index and link its share files."""
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / package
    index.parent.mkdir(parents=True, exist_ok=True)
    index.touch()
    share = prefix / 'share' / package
    wanted = {share / 'package.xml': source / 'package.xml'}
    for directory in SHARED_DIRS:
        installed = share / directory
        if installed.is_symlink():   # a whole-directory link from an older set-up
            installed.unlink()
        if (source / directory).is_dir():
            wanted.update({share / path.relative_to(source): path
                           for path in sorted((source / directory).rglob('*')) if path.is_file()})
    for link_path, target in wanted.items():
        link(link_path, target)
    for path in sorted(share.rglob('*'), reverse=True):   # children before their directories
        if path.is_symlink() and path not in wanted and path.readlink().is_relative_to(source):
            path.unlink()
        elif path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()


def link_executables(prefix: Path, package: str) -> None:
    """Link the package's console scripts from prefix/bin into prefix/lib/<package>/ (setup.cfg's script_dir)."""
    try:
        entry_points = distribution(package).entry_points.select(group='console_scripts')
    except PackageNotFoundError:
        return
    for entry in entry_points:
        link(prefix / 'lib' / package / entry.name, prefix / 'bin' / entry.name)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print('usage: link_share.py PREFIX SOURCE_ROOT PACKAGE...', file=sys.stderr)
        return 2
    prefix, root = Path(argv[0]).absolute(), Path(argv[1]).absolute()
    for package in argv[2:]:
        link_share(prefix, root / 'src' / package, package)
        link_executables(prefix, package)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
