"""rclpy utilities shared by the dynamo-ros nodes and tools (no torch, no MuJoCo)."""
