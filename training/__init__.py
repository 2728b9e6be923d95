"""dynaprot_viz.training: MD ingestion, label store, datasets, training, simulation.

May import dynaprot_viz.core, never the viewer layer.
"""
