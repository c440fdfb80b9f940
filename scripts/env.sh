# Runtime environment of the workspace venv, sourced by the Makefile and usable by hand:
#   source scripts/env.sh
# Gives python, pytest and the node executables the built interfaces with a deterministic
# LD_LIBRARY_PATH. The ROS wheels' start-up hook would otherwise re-exec every Python start
# with a library path built from a set (random order per process); setting the path here and
# marking the hook as done avoids both the re-exec and the randomness.
_dynamo_root=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)
_dynamo_venv="$_dynamo_root/.venv"
_dynamo_site="$_dynamo_venv/lib/python3.11/site-packages"
_dynamo_libs="$_dynamo_venv/lib"
for _d in $(ls -d "$_dynamo_site"/ros_*.libs 2>/dev/null | LC_ALL=C sort); do
  _dynamo_libs="$_dynamo_libs:$_d"
done
export LD_LIBRARY_PATH="$_dynamo_libs"
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
export AMENT_PREFIX_PATH="$_dynamo_venv"
export PATH="$_dynamo_venv/bin:$PATH"
export VIRTUAL_ENV="$_dynamo_venv"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
# DDS stays on this machine; ROS_DOMAIN_ID is chosen per test session / demo run.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export MUJOCO_GL="${MUJOCO_GL:-egl}"
unset _dynamo_root _dynamo_venv _dynamo_site _dynamo_libs _d
