#!/usr/bin/env bash
# Builds and installs dynamo_msgs into the venv with plain CMake, applying the wheel
# workarounds from the ROS-from-PyPI notes, so the messages import with no extra environment;
# and dev/control_msgs (the FollowJointTrajectory action, which no wheel provides) unless another
# control_msgs is importable already.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
py="$venv/bin/python"

# Workaround 3: the wheels' rosidl_generator_py export files carry the wheel build machine's
# Python and numpy include paths; point them at this interpreter's.
py_include=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_include=$("$py" -c 'import numpy; print(numpy.get_include())')
for f in "$venv"/share/*/cmake/export_*__rosidl_generator_pyExport.cmake; do
  if grep -q '/opt/python/cp311-cp311' "$f"; then
    sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$py_include#g" \
           -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_include#g" "$f"
  fi
done

# Workaround 2: rosidl finds its typesupports only through the ament index.
export AMENT_PREFIX_PATH="$venv"
export CMAKE_PREFIX_PATH="$venv"
export PATH="$venv/bin:$PATH"

# build_package NAME SOURCE_DIR: configure, build and install one interface package into the venv.
build_package() {
  local build="$root/build/$1"
  mkdir -p "$root/build"
  cmake -S "$2" -B "$build" -DCMAKE_INSTALL_PREFIX="$venv" \
    -DPython3_EXECUTABLE="$py" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release > "$build.log" 2>&1 \
    || { cat "$build.log"; exit 1; }
  cmake --build "$build" -j 2 >> "$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
  cmake --install "$build" >> "$build.log" 2>&1 || { tail -50 "$build.log"; exit 1; }
  echo "$1 installed into $venv"
}

build_package dynamo_msgs "$root/src/dynamo_msgs"
# A control_msgs that is not our stand-in (its installed package.xml differs) is a real one: keep it.
if "$py" -c 'import control_msgs' 2>/dev/null \
    && ! cmp -s "$venv/share/control_msgs/package.xml" "$root/dev/control_msgs/package.xml"; then
  echo "control_msgs is importable already: not building the stand-in of dev/control_msgs"
else
  build_package control_msgs "$root/dev/control_msgs"
fi
