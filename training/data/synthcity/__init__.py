"""SynthCity: procedural street scenes in the Cityscapes layout and label space.

A pinhole camera looks down a street: a ground plane (road with lane markings, curbs and
sidewalks, grass verges), two facade planes (buildings with windows and doors, walls, gaps
with trees), a backdrop of distant buildings and trees, fences, and billboard objects
standing on the ground (cars, buses, trucks, persons, bicycles and riders, trees, poles,
street lamps, traffic lights and signs). Surfaces are drawn with a depth test, then the image
gets per-class texture, haze, lighting, blur and noise. Plain numpy; deterministic per seed.
"""

from training.data.synthcity.scene import render_frame
from training.data.synthcity.writer import frame_rng, frame_stem, write_synthcity

__all__ = ["frame_rng", "frame_stem", "render_frame", "write_synthcity"]
