"""Model bundles, the TFLite runtime, face pipeline, liveness measures and vein matching."""
