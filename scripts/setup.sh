#!/usr/bin/env bash
# One-command set-up of the workspace on a machine with no ROS installed (Debian 12, Python 3.11):
# a venv with the ROS 2 Kilted core from PyPI wheels, torch (CPU) and every other dependency,
# pinned in requirements.lock; dynamo_msgs (and dev/control_msgs, when no control_msgs is importable)
# built with CMake into the venv; the Python packages installed editable. Called by `make setup`,
# which reruns only the steps whose inputs changed.
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
  # Editable installs skip setup.py's data_files: register each package in the ament index, link
  # its share files one by one and its console scripts into lib/<package>/, as
  # `colcon build --symlink-install` does (get_package_share_directory(), `ros2 launch` and
  # `ros2 run` then find them; edits take effect without a rebuild, added files on the next run).
  "$venv/bin/python" "$root/scripts/link_share.py" "$venv" "$root" "${python_packages[@]}"
}

case "$step" in
  deps) deps ;;
  msgs) "$root/scripts/build_msgs.sh" ;;
  packages) packages ;;
  all) deps; "$root/scripts/build_msgs.sh"; packages ;;
  *) echo "setup: unknown step '$step' (deps, msgs, packages, all)" >&2; exit 2 ;;
esac
