#!/usr/bin/env bash
# Rewrites requirements.lock from the current .venv (after adding or upgrading a dependency).
# pip freeze also lists the egg-info that ament's CMake installs beside each ROS wheel
# (action_msgs, rclpy, ... next to ros-action-msgs, ros-rclpy) and our own dynamo_msgs; none of
# those are PyPI projects, so they are left out. setuptools is pinned too: the editable installs
# build without isolation. torch is pinned without its local "+cpu" tag.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/.venv/bin/python" -m pip freeze --all --exclude-editable --disable-pip-version-check | "$root/.venv/bin/python" -c '
import re, sys
lines = [l.strip() for l in sys.stdin if l.strip() and not l.startswith("-e")]
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
names = {norm(l.split("==")[0]) for l in lines}
for line in sorted(lines, key=str.lower):
    name = norm(line.split("==")[0])
    if name in ("dynamo-msgs", "pip") or ("ros-" + name) in names:
        continue
    print(re.sub(r"^torch==(.*)\+cpu$", r"torch==\1", line))
' > "$root/requirements.lock"
echo "requirements.lock: $(wc -l < "$root/requirements.lock") pins"
