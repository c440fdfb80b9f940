"""Simulated UFactory xArm7 kitchen and Wonik Allegro hand in MuJoCo.

With the ROS interfaces of the real drivers, scripted experts and demonstration recording.
"""
