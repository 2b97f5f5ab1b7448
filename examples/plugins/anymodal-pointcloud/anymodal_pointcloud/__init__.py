"""anymodal-pointcloud: lidar-style point clouds (``.npy``, ``[N, 3]``) as an anymodal modality plugin."""

__version__ = "0.1.0"
