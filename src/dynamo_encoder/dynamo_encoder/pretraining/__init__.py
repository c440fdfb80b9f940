"""DynaMo pretraining: config presets, in-memory training windows, the trainer and its CLI."""
