"""Shipped pretraining presets (<name>.yaml); a package so that setup.py's package_data ships them."""
