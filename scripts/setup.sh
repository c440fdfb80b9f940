#!/usr/bin/env bash
# One-command set-up of the workspace on a machine with no ROS installed (Debian 12, Python 3.11):
# a venv with the ROS 2 Kilted core from PyPI wheels, torch (CPU) and every other dependency,
# pinned in requirements.lock; dynamo_msgs built with CMake into the venv; the Python packages
# installed editable. Called by `make setup`, which reruns only the steps whose inputs changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
step=${1:-all}

python_bin=${PYTHON:-}
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      python_bin=$candidate; break
    fi
  done
fi
[ -n "$python_bin" ] || { echo "setup: Python 3.11 is required (the ROS 2 Kilted wheels are built for it); set PYTHON=/path/to/python3.11" >&2; exit 1; }

deps() {
  [ -x "$venv/bin/python" ] || "$python_bin" -m venv "$venv"
  # The pinned torch==2.13.0 resolves to the CPU build; ROS wheels need no index beyond PyPI.
  # `ros-rmw-fastrtps-cpp` and the rosidl build tools are listed explicitly in the lock because
  # the wheels do not declare them (workaround 1 of the ROS-from-PyPI notes).
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements.lock"
}

python_packages=(dynamo_data dynamo_util dynamo_encoder dynamo_policy dynamo_sim dynamo_bringup)

packages() {
  local pkg args=()
  for pkg in "${python_packages[@]}"; do args+=(-e "$root/src/$pkg"); done
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation "${args[@]}" \
    2> >(grep -v -e BuildBackendWarning -e 'Editable installation' -e '^ *!!' -e '^ *\*\*\*' -e 'Please be careful' \
          -e 'name as your package' -e 'with strategy, WheelFile' -e '^ *$' >&2)
  # Editable installs skip setup.py's data_files, so register each package in the ament index
  # and link its share files (package.xml, launch/, config/) as `colcon build --symlink-install`
  # does: get_package_share_directory() then finds them and edits take effect without a rebuild.
  for pkg in "${python_packages[@]}"; do
    mkdir -p "$venv/share/ament_index/resource_index/packages" "$venv/share/$pkg"
    touch "$venv/share/ament_index/resource_index/packages/$pkg"
    ln -sfn "$root/src/$pkg/package.xml" "$venv/share/$pkg/package.xml"
    for dir in launch config; do
      if [ -d "$root/src/$pkg/$dir" ]; then ln -sfn "$root/src/$pkg/$dir" "$venv/share/$pkg/$dir"; fi
    done
  done
  # ros2 run / launch_ros look for executables in lib/<package>/ (setup.cfg's script_dir).
  "$venv/bin/python" - "$venv" "${python_packages[@]}" <<'PY'
import sys
from importlib.metadata import distribution
from pathlib import Path
venv = Path(sys.argv[1])
for package in sys.argv[2:]:
    lib = venv / 'lib' / package
    lib.mkdir(parents=True, exist_ok=True)
    for entry in distribution(package).entry_points.select(group='console_scripts'):
        link = lib / entry.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(venv / 'bin' / entry.name)
PY
}

case "$step" in
  deps) deps ;;
  msgs) "$root/scripts/build_msgs.sh" ;;
  packages) packages ;;
  all) deps; "$root/scripts/build_msgs.sh"; packages ;;
  *) echo "setup: unknown step '$step' (deps, msgs, packages, all)" >&2; exit 2 ;;
esac
