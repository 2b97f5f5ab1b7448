"""The synthetic demo world: media files of six modalities and conversations about them.

``anymodal demo-data`` writes it (:func:`anymodal.demo.world.generate_world`); the shipped demo
model is trained on it. Every file shows a few named attributes plainly (a red circle on the left,
a high beeping tone, a person running) and varies in everything else, so that what a model learns
carries over to plain renderings it never saw. The pieces, one job each:

* :mod:`~anymodal.demo.vocabulary`: modalities, attributes and their classes, file kinds;
* :mod:`~anymodal.demo.language`: questions, reference answers and their checks;
* :mod:`~anymodal.demo.schedule`: which attributes each file gets, balanced per class;
* :mod:`~anymodal.demo.shapes`, :mod:`~anymodal.demo.render`, :mod:`~anymodal.demo.video`,
  :mod:`~anymodal.demo.sound`, :mod:`~anymodal.demo.motion`: drawing and synthesis;
* :mod:`~anymodal.demo.world`: records and the whole world on disk;
* :mod:`~anymodal.demo.examples`: the sample inputs shipped in ``examples/``.

Importing this package imports nothing heavy: numpy, Pillow and PyAV load with the modules that
use them.

May import: contract, files, preprocess, anymodal, config, encoders, projectors, runtime, models,
scaffold, train, bind, data, eval, serve.
"""
