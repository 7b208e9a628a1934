"""Figures: attention maps and rollout, sample grids, drawn detections, benchmark plots."""
