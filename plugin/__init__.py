"""dynaprot_viz.plugin: thin PyMOL and ChimeraX adapters over dynaprot_viz."""
