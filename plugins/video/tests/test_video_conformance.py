"""anymodal's plugin conformance suite, run on the video plugin."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from anymodal.testing import PluginConformance


class TestVideoConformance(PluginConformance):
    plugin = "anymodal_video.plugin"
    heavy_modules = ("torch", "numpy", "decord")

    def write_sample(self, modality: str, directory: Path) -> Path:
        path = directory / "sample.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("mpeg4", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for index in range(20):
                frame = np.full((48, 64, 3), index * 12, dtype=np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())
        return path
