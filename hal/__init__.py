"""Hardware abstraction: camera, card readers, vein sensor, speaker; real and emulated backends."""
