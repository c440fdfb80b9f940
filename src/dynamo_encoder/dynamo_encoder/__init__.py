"""DynaMo visual encoder: model, self-supervised pretraining, rosbag2 -> dataset converter, encoder node."""
