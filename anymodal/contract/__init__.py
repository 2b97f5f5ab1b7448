"""What plugin and bridge authors code against: the specs a plugin registers (modalities, encoders,
projectors, templates), the Bridge protocol and its spec, the pluggy hook specifications, the
plugin registry and its loader, the tensor layouts a preprocessing and an encoder declare and
whether they agree, the errors users see, and the wording of messages. Everything here
is torch-free, so importing a plugin stays cheap; ``anymodal`` (the public API) re-exports it.

May import: nothing else in anymodal.
"""
