"""The share files of the workspace packages, installed by scripts/link_share.py (run by `make setup`)."""

import os
import subprocess
import sys
from pathlib import Path

from ament_index_python.packages import get_package_share_directory

REPO = Path(__file__).parents[1]
LINK_SHARE = REPO / 'scripts' / 'link_share.py'


def _walked_files(directory: Path) -> set[Path]:
    """Return the files below `directory` as ros2launch finds them: os.walk, directory links not followed."""
    return {Path(parent, name).relative_to(directory) for parent, _, names in os.walk(directory) for name in names}


def test_ros2_launch_finds_every_launch_and_config_file_of_the_installed_bringup():
    share = Path(get_package_share_directory('dynamo_bringup'))
    source = REPO / 'src' / 'dynamo_bringup'
    expected = {path.relative_to(source) for directory in ('launch', 'config')
                for path in (source / directory).rglob('*') if path.is_file()}
    assert expected and expected <= _walked_files(share)
    assert (share / 'launch' / 'xarm_kitchen.launch.py').resolve() == source / 'launch' / 'xarm_kitchen.launch.py'


def _link_share(prefix: Path, root: Path) -> None:
    subprocess.run([sys.executable, str(LINK_SHARE), str(prefix), str(root), 'demo_pkg'], check=True)


def test_rerun_links_added_files_and_removes_links_of_deleted_ones(tmp_path):
    root, prefix = tmp_path / 'ws', tmp_path / 'prefix'
    source = root / 'src' / 'demo_pkg'
    (source / 'launch').mkdir(parents=True)
    (source / 'package.xml').write_text('<package/>')
    (source / 'launch' / 'first.launch.py').write_text('')
    # what an older set-up left: share/<package>/config linked as a whole directory
    (source / 'config').mkdir()
    (prefix / 'share' / 'demo_pkg').mkdir(parents=True)
    (prefix / 'share' / 'demo_pkg' / 'config').symlink_to(source / 'config')
    _link_share(prefix, root)
    share = prefix / 'share' / 'demo_pkg'
    assert _walked_files(share) == {Path('package.xml'), Path('launch/first.launch.py')}
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'demo_pkg').is_file()

    (source / 'launch' / 'first.launch.py').unlink()
    (source / 'launch' / 'second.launch.py').write_text('')
    (source / 'config' / 'robots').mkdir()
    (source / 'config' / 'robots' / 'arm.yaml').write_text('a: 1\n')
    _link_share(prefix, root)
    assert _walked_files(share) == {Path('package.xml'), Path('launch/second.launch.py'),
                                    Path('config/robots/arm.yaml')}
    assert (share / 'config' / 'robots' / 'arm.yaml').read_text() == 'a: 1\n'   # a link: edits show at once
