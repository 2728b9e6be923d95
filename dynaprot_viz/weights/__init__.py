"""Shipped model weights (safetensors + config json + model card); data only."""
